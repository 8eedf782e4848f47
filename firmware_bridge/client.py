"""One board over pyserial: replies matched to requests by id, unsolicited lines to a callback."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import serial
from serial.threaded import Packetizer, ReaderThread

from firmware_bridge import protocol
from firmware_bridge.errors import BoardError, BoardTimeout, BridgeError, FrameError
from firmware_bridge.protocol import Frame, Reading

log = logging.getLogger(__name__)

# How long one serial read may block; bounds how fast the reader thread notices close().
READ_POLL_S = 0.05


@dataclass(frozen=True)
class BoardInfo:
    """What a board says of itself in its HELLO reply."""

    board_id: str
    kind: str  # "producer" or "consumer"
    relay_count: int
    version: int


class _Lines(Packetizer):
    """pyserial Packetizer cutting the byte stream at LF and handing each line to the client."""

    TERMINATOR = b"\n"

    def __init__(self, client: BoardClient):
        super().__init__()
        self.client = client

    def data_received(self, data: bytes) -> None:
        """Split into lines; drop a runaway line so line noise cannot grow the buffer forever."""
        super().data_received(data)
        if len(self.buffer) > 4 * protocol.MAX_LINE:
            log.warning("%s: dropped %d bytes with no line end", self.client.url, len(self.buffer))
            self.buffer.clear()

    def handle_packet(self, packet: bytearray) -> None:
        """One complete line."""
        self.client._on_line(bytes(packet))

    def connection_lost(self, exc: BaseException | None) -> None:
        """The port closed or failed; the base class would re-raise, the client reports it."""
        self.transport = None
        self.client._on_lost(exc)


class BoardClient:
    """A connection to one board; thread-safe, one request in flight at a time."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        on_event: Callable[[Frame], None] | None = None,
    ):
        self.url = url
        self.timeout = timeout
        self.on_event = on_event
        self._ids = itertools.count()
        self._lock = threading.Lock()  # one request at a time, as the board answers in order
        self._waiters: dict[int, queue.Queue[Frame | None]] = {}
        self._closed = False
        try:
            # exclusive: a second reader on the same tty would steal replies meant for us.
            port = serial.serial_for_url(
                url, baudrate=115200, timeout=READ_POLL_S, exclusive=True
            )
            port.reset_input_buffer()  # what the board said while nobody listened is stale
        except (serial.SerialException, OSError, ValueError) as err:
            raise BridgeError(f"cannot open board port {url}: {err}") from err
        self._reader = ReaderThread(port, lambda: _Lines(self))
        self._reader.name = f"board-client {url}"
        self._reader.start()
        self._reader.connect()

    @property
    def connected(self) -> bool:
        """True until close() or until the port fails."""
        return not self._closed

    def request(self, verb: str, *args: object) -> Frame:
        """Send a request and return its OK reply; BoardError on ERR, BoardTimeout on silence."""
        with self._lock:
            if self._closed:
                raise BridgeError(f"{self.url} is closed")
            req_id = next(self._ids) % protocol.MAX_ID + 1  # 1..65535; 0 is for broken ids
            line = protocol.encode(protocol.REQUEST, req_id, verb, *args)
            waiter: queue.Queue[Frame | None] = queue.Queue()
            self._waiters[req_id] = waiter
            try:
                self._reader.write(line)
                reply = waiter.get(timeout=self.timeout)
            except queue.Empty as err:
                raise BoardTimeout(f"{self.url}: no reply to {verb} in {self.timeout} s") from err
            except (serial.SerialException, OSError) as err:
                raise BridgeError(f"{self.url}: cannot send {verb}: {err}") from err
            finally:
                self._waiters.pop(req_id, None)
        if reply is None:
            raise BridgeError(f"{self.url}: port lost while waiting for {verb}")
        if reply.verb == "ERR":
            code = int(reply.args[0]) if reply.args and reply.args[0].isdigit() else 0
            raise BoardError(code, " ".join(reply.args[1:]))
        if reply.verb != "OK" or not reply.args or reply.args[0] != verb:
            raise BridgeError(f"{self.url}: unexpected reply {reply} to {verb}")
        return reply

    def hello(self) -> BoardInfo:
        """Ask the board who it is; BridgeError if it speaks another protocol version."""
        args = self.request("HELLO").args
        try:
            info = BoardInfo(board_id=args[2], kind=args[3], relay_count=int(args[4]),
                             version=int(args[1]))
        except (IndexError, ValueError) as err:
            raise BridgeError(f"{self.url}: malformed HELLO reply {args}") from err
        if info.version != protocol.VERSION:
            raise BridgeError(f"{self.url}: board speaks protocol v{info.version}, "
                              f"this bridge v{protocol.VERSION}")
        return info

    def read(self) -> Reading:
        """A fresh reading."""
        return protocol.parse_reading(self.request("READ").args[1:])

    def set_relay(self, n: int, on: bool) -> None:
        """Switch relay n and check that the board confirms the new state."""
        state = "1" if on else "0"
        reply = self.request("RELAY", n, state)
        if reply.args[1:] != (str(n), state):
            raise BridgeError(f"{self.url}: relay {n} {state} confirmed as {reply.args[1:]}")

    def set_budget(self, n: int, wh: float | None) -> None:
        """Give relay n a local Wh budget (None clears it); checked against the reply."""
        value = "-" if wh is None else f"{wh:.3f}"
        reply = self.request("BUDGET", n, value)
        if reply.args[1:] != (str(n), value):
            raise BridgeError(f"{self.url}: budget of relay {n} confirmed as {reply.args[1:]}")

    def heartbeat(self) -> None:
        """Tell the board the host is alive, so its failsafe stays off."""
        self.request("HB")

    def close(self) -> None:
        """Close the port (safe to call twice)."""
        self._closed = True
        if self._reader.is_alive():
            self._reader.close()
        elif self._reader.serial.is_open:
            self._reader.serial.close()

    def _on_line(self, raw: bytes) -> None:
        """Route one line; runs on the reader thread, so it must never raise."""
        try:
            frame = protocol.decode(raw)
        except FrameError as err:
            log.warning("%s: discarded malformed line %r: %s", self.url, raw[:130], err)
            return
        if frame.kind == protocol.REPLY:
            waiter = self._waiters.get(frame.req_id)
            pending = list(self._waiters.values())  # one C-level copy: safe against request()
            if waiter is None and frame.req_id == 0 and len(pending) == 1:
                # ERR with id 0: the board could not read our id; only one request is in flight.
                waiter = pending[0]
            if waiter is None:
                log.info("%s: dropped a reply nobody waits for (late?): %s", self.url, frame)
            else:
                waiter.put(frame)
        elif frame.kind == protocol.EVENT and self.on_event is not None:
            try:
                self.on_event(frame)
            except Exception:  # a listener bug must not take the serial reader down
                log.exception("%s: event callback failed on %s", self.url, frame)

    def _on_lost(self, exc: BaseException | None) -> None:
        was_closed, self._closed = self._closed, True
        if exc is not None and not was_closed:
            log.warning("%s: connection lost: %s", self.url, exc)
        for waiter in list(self._waiters.values()):
            waiter.put(None)
