"""One board over pyserial: request/response matched by id, unsolicited lines to a callback."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import serial
from serial.threaded import LineReader, ReaderThread

from firmware_bridge import protocol
from firmware_bridge.errors import BoardError, BoardTimeout, BridgeError, FrameError
from firmware_bridge.protocol import Frame, Reading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardInfo:
    """What a board says of itself in its HELLO reply."""

    board_id: str
    kind: str
    relay_count: int
    version: int


class _Lines(LineReader):
    """pyserial LineReader splitting on LF; hands each line to the client."""

    TERMINATOR = b"\n"
    ENCODING = "ascii"
    UNICODE_HANDLING = "replace"

    def __init__(self, client: BoardClient):
        super().__init__()
        self.client = client

    def handle_line(self, line: str) -> None:
        self.client._on_line(line)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.client._on_lost(exc)


class BoardClient:
    """A connection to one board; thread-safe, one request in flight at a time."""

    def __init__(
        self,
        url: str,
        timeout: float = 1.0,
        on_event: Callable[[Frame], None] | None = None,
    ):
        self.url = url
        self.timeout = timeout
        self.on_event = on_event or (lambda frame: None)
        self.connected = False
        self._ids = itertools.count(1)
        self._replies: queue.Queue[Frame] = queue.Queue()
        self._lock = threading.Lock()
        try:
            port = serial.serial_for_url(url, baudrate=115200, timeout=0.1)
        except (serial.SerialException, OSError) as err:
            raise BridgeError(f"cannot open {url}: {err}") from err
        self._reader = ReaderThread(port, lambda: _Lines(self))
        self._reader.start()
        self._reader.connect()
        self.connected = True

    def request(self, verb: str, *args: object) -> Frame:
        """Send a request and return its OK reply; BoardError on ERR, BoardTimeout on silence."""
        with self._lock:
            if not self.connected:
                raise BridgeError(f"{self.url} is disconnected")
            req_id = next(self._ids) % 0xFFFF + 1
            while not self._replies.empty():  # late replies of timed-out requests
                self._replies.get_nowait()
            self._reader.write(protocol.encode(protocol.REQUEST, req_id, verb, *args))
            try:
                while True:
                    reply = self._replies.get(timeout=self.timeout)
                    if reply.req_id == req_id:
                        break
            except queue.Empty as err:
                raise BoardTimeout(f"{self.url}: no reply to {verb} in {self.timeout} s") from err
        if reply.verb == "ERR":
            code = int(reply.args[0]) if reply.args and reply.args[0].isdigit() else 0
            raise BoardError(code, " ".join(reply.args[1:]))
        if reply.verb != "OK" or not reply.args or reply.args[0] != verb:
            raise BridgeError(f"{self.url}: unexpected reply {reply} to {verb}")
        return reply

    def hello(self) -> BoardInfo:
        """Ask the board who it is."""
        args = self.request("HELLO").args
        try:
            return BoardInfo(board_id=args[2], kind=args[3], relay_count=int(args[4]),
                             version=int(args[1]))
        except (IndexError, ValueError) as err:
            raise BridgeError(f"{self.url}: malformed HELLO reply {args}") from err

    def read(self) -> Reading:
        """A fresh reading."""
        return protocol.parse_reading(self.request("READ").args[1:])

    def set_relay(self, relay: int, on: bool) -> None:
        """Switch a relay and check the board confirms the new state."""
        reply = self.request("RELAY", relay, 1 if on else 0)
        if reply.args[1:] != (str(relay), "1" if on else "0"):
            raise BridgeError(f"{self.url}: relay {relay} confirmed as {reply.args[1:]}")

    def heartbeat(self) -> None:
        """Tell the board the host is alive."""
        self.request("HB")

    def close(self) -> None:
        """Close the port."""
        self.connected = False
        self._reader.close()

    def _on_line(self, line: str) -> None:
        try:
            frame = protocol.decode(line)
        except FrameError as err:
            log.warning("%s: discarded malformed line %r: %s", self.url, line[:80], err)
            return
        if frame.kind == protocol.REPLY:
            self._replies.put(frame)
        elif frame.kind == protocol.EVENT:
            self.on_event(frame)

    def _on_lost(self, exc: BaseException | None) -> None:
        self.connected = False
        if exc:
            log.warning("%s: connection lost: %s", self.url, exc)
