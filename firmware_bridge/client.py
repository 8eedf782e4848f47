"""One board over its serial line (protocol v2): a session per HELLO, replies matched to the
request in flight by id, fresh unsolicited lines to a callback.

The line itself is a firmware_bridge.serial_port.LinePort: opened by pyserial, read by the
process's one port loop (no thread per board, no select())."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge import protocol
from firmware_bridge.errors import (
    ERR_REPLAY,
    ERR_SESSION,
    BoardError,
    BoardTimeout,
    BridgeError,
    FrameError,
)
from firmware_bridge.ioloop import IoLoop
from firmware_bridge.protocol import Frame, Reading
from firmware_bridge.serial_port import LinePort, event_lanes

log = logging.getLogger(__name__)

# Event ids past this make the next request re-HELLO, well before a board runs out at 65535.
REHELLO_EVENTS = 0xF000
# HELLOs the first exchange on a freshly opened port may take: opening the port resets an
# Uno/Mega-class board (DTR) and its bootloader swallows what arrives for ~0.5-2 s. A boot
# banner cuts the wait short: HELLO goes again at once.
HELLO_TRIES = 3


@dataclass(frozen=True)
class BoardInfo:
    """What a board says of itself in its HELLO reply (and a remote bridge announces)."""

    board_id: str
    kind: str  # "producer" or "consumer"
    relay_count: int
    protocol: int  # the line protocol version it speaks
    time_factor: float = 1.0  # emulated seconds per wall-clock second; 1 for a real board


class _V1Board:
    """Handed to a waiting HELLO when the board answered in protocol v1 framing."""


class _Booted:
    """Handed to a waiting request when the board's boot banner came: it reset meanwhile."""


_V1 = _V1Board()
_BOOTED = _Booted()
_Waiter = queue.Queue  # of Frame | _V1Board | _Booted | None: reply, v1 board, reset, lost port
_Pending = tuple[int, str, _Waiter] | None  # (request id, verb, its waiter) in flight


class BoardClient:
    """A connection to one board; thread-safe, one request in flight at a time.

    The first request opens a session with HELLO; the client re-HELLOs by itself when the
    board lost the session (ERR 5/6, a timeout) and before request or event ids run out.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        on_event: Callable[[Frame], None] | None = None,
        loop: IoLoop | None = None,
        hello_tries: int = HELLO_TRIES,
    ):
        self.url = url
        self.timeout = timeout
        self.on_event = on_event
        self.info: BoardInfo | None = None
        self.hello_tries = max(1, hello_tries)
        self._fresh_port = True  # the first HELLO since the open: a DTR reset may be running
        self.boots = 0  # boot banners seen: the board reset (DTR, watchdog, power)
        self._lock = threading.Lock()  # one request at a time, as the board answers in order
        self._next_id = 1  # ids only grow within a session; a replayed id is refused
        self._session: str | None = None
        self._last_event = 0  # the newest event id of the session: older ones are replays
        self._pending: _Pending = None
        self._closed = False
        # Events go to on_event off the port loop; a request returns only once the events
        # the board sent before its reply were delivered, as when one thread did both.
        self._events_queued = 0  # counted on the loop thread
        self._events_done = 0
        self._events_cv = threading.Condition()
        self._reply_mark = 0  # events queued when the reply in flight arrived
        # Readings only supersede each other: while one waits for its lane, a newer one takes
        # its place, so a lane slower than the board's reports holds one per board, never a
        # growing backlog of ever older ones (each costs a signature and an odometer write).
        self._arrivals = 0  # lines received, counted on the loop thread: their order
        self._queued: list[tuple[Frame, int] | None] | None = None  # the reading not yet sent
        self._queued_lock = threading.Lock()
        self._read_mark = 0  # arrival number of the newest READ reply: older readings are stale
        # Lines arrive on the port loop's thread (loop: default the process's shared one).
        self._port = LinePort(url, self._on_line, self._on_lost, timeout=timeout, loop=loop)

    @property
    def connected(self) -> bool:
        """True until close() or until the port fails."""
        return not self._closed

    def request(self, verb: str, *args: object) -> Frame:
        """Send a request and return its OK reply; BoardError on ERR, BoardTimeout on silence."""
        return self._request(verb, args, ordered=True)

    def _request(self, verb: str, args: tuple[object, ...], ordered: bool) -> Frame:
        """request(); ordered: return only once the events sent before the reply were delivered."""
        with self._lock:
            if self._closed:
                raise BridgeError(f"{self.url} is closed")
            if verb == "HELLO":
                return self._exchange(verb, args)
            try:
                return self._in_session(verb, args, ordered)
            except BoardError as err:
                if err.code not in (ERR_REPLAY, ERR_SESSION):
                    raise
                # The board did not act on it (it was reset, or is ahead of our ids), so
                # asking once more in a new session repeats nothing.
                return self._in_session(verb, args, ordered)

    def _in_session(self, verb: str, args: tuple[object, ...], ordered: bool = True) -> Frame:
        """The request under an open session: HELLO first when none is, or ids run low."""
        if (self._session is None or self._next_id > protocol.MAX_ID
                or self._last_event > REHELLO_EVENTS):
            self._hello()
        return self._exchange(verb, args, ordered)

    def hello(self) -> BoardInfo:
        """Open a new session; BridgeError if the board speaks another protocol version."""
        with self._lock:
            if self._closed:
                raise BridgeError(f"{self.url} is closed")
            return self._hello()

    def _hello(self) -> BoardInfo:
        reply = self._hello_reply()
        try:
            hello = protocol.parse_hello(reply.args[1:])
        except FrameError as err:
            self._session = None
            raise BridgeError(f"{self.url}: {err}") from err
        info = BoardInfo(hello.board_id, hello.kind, hello.relay_count, hello.version,
                         hello.time_factor)
        if self.info is not None and info.board_id != self.info.board_id:
            self._session = None
            raise BridgeError(f"{self.url} now answers as {info.board_id}, "
                              f"not {self.info.board_id}")
        self.info = info
        return info

    def _hello_reply(self) -> Frame:
        """HELLO's reply. On a fresh port it tries again after a timeout (hello_tries in all),
        as the bootloader of a board reset by the open may have swallowed it; after a boot
        banner it asks again at once (at most hello_tries banners: a board that keeps
        rebooting is an error)."""
        tries = self.hello_tries if self._fresh_port else 1
        self._fresh_port = False  # the reset, if any, is over after these tries
        timeouts = boots = 0
        while True:
            try:
                return self._exchange("HELLO", ())
            except _Rebooted as err:
                boots += 1
                if boots > self.hello_tries:
                    raise BoardTimeout(f"{self.url}: board rebooted {boots} times "
                                       "while HELLO waited") from err
                log.info("%s: board booted while HELLO waited: HELLO again", self.url)
            except BoardTimeout:
                timeouts += 1
                if timeouts >= tries:
                    raise
                log.info("%s: no reply to HELLO %d of %d (a board reset by the open?)",
                         self.url, timeouts, tries)

    def _exchange(self, verb: str, args: tuple[object, ...], ordered: bool = True) -> Frame:
        """One request and its reply, under the open session (or none, for HELLO)."""
        if verb == "HELLO":
            self._session = None  # a board answers HELLO unkeyed, then keys the new session
            if self._next_id > protocol.MAX_ID:
                self._next_id = 1
        req_id, self._next_id = self._next_id, self._next_id + 1
        line = protocol.encode(protocol.REQUEST, req_id, verb, *args, session=self._session or "")
        waiter: _Waiter = queue.Queue()
        self._pending = (req_id, verb, waiter)
        try:
            self._port.write(line, self.timeout)
            reply = waiter.get(timeout=self.timeout)
        except queue.Empty as err:
            self._session = None  # the board may have lost or changed it: HELLO next time
            raise BoardTimeout(f"{self.url}: no reply to {verb} in {self.timeout} s") from err
        except BoardTimeout as err:
            self._session = None
            raise BoardTimeout(f"{self.url}: cannot send {verb}: {err}") from err
        except BridgeError as err:
            raise BridgeError(f"{self.url}: cannot send {verb}: {err}") from err
        finally:
            self._pending = None
        if reply is None:
            raise BridgeError(f"{self.url}: port lost while waiting for {verb}")
        if isinstance(reply, _Booted):
            self._session = None
            if verb == "HELLO":
                raise _Rebooted()
            # Not sent again: the board may have acted before it reset (as after a timeout).
            raise BoardTimeout(f"{self.url}: board rebooted while {verb} waited")
        if ordered:
            self._await_events(self._reply_mark)
        if isinstance(reply, _V1Board):
            raise BridgeError(f"{self.url}: board speaks protocol v{protocol.LEGACY_VERSION}; "
                              f"this bridge needs v{protocol.VERSION}")
        if reply.verb == "ERR":
            code = int(reply.args[0]) if reply.args and reply.args[0].isdigit() else 0
            if code in (ERR_REPLAY, ERR_SESSION):
                self._session = None  # the board and we disagree on the session: HELLO anew
            raise BoardError(code, " ".join(reply.args[1:]))
        if reply.verb != "OK" or not reply.args or reply.args[0] != verb:
            raise BridgeError(f"{self.url}: unexpected reply {reply} to {verb}")
        return reply

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
        """Tell the board the host is alive, so its failsafe stays off.

        Its reply carries nothing the board's earlier events could contradict, so it does not
        wait for their delivery: behind slow listeners a heartbeat that waited (up to the
        reply timeout) let the boards' failsafes trip, each beat holding a thread of the pool.
        """
        self._request("HB", (), ordered=False)

    def close(self) -> None:
        """Close the port (safe to call twice)."""
        self._closed = True
        self._port.close()
        self._on_lost(None)  # a request still waiting learns at once, not at its timeout

    def _on_line(self, raw: bytes) -> None:
        """Route one line; runs on the port loop's thread, so it must never raise."""
        pending = self._pending  # read once: request() replaces it between requests
        self._arrivals += 1
        if raw.startswith(b"!0 BOOT ") and self._on_banner(raw, pending):
            return
        try:
            frame = protocol.decode(raw, self._session)
        except FrameError as err:
            self._on_undecodable(raw, err, pending)
            return
        if frame.kind == protocol.REPLY:
            self._on_reply(frame, pending)
        elif frame.kind == protocol.EVENT:
            self._on_event(frame)

    def _on_banner(self, raw: bytes, pending: _Pending) -> bool:
        """A boot banner (unkeyed): the board reset, its session is gone; True if it was one."""
        try:
            frame = protocol.decode(raw, "")
        except FrameError:
            return False
        self.boots += 1
        self._session = None  # the next request HELLOs first
        log.warning("%s: board booted: %s", self.url, " ".join(frame.args))
        if pending is not None:
            pending[2].put(_BOOTED)
        return True

    def _on_reply(self, frame: Frame, pending: _Pending) -> None:
        """Only the reply naming the request in flight counts; id 0 or another id, never."""
        if pending is None or frame.req_id != pending[0]:
            log.info("%s: dropped a reply no request waits for (late or replayed): %s",
                     self.url, frame)
            return
        if pending[1] == "HELLO" and frame.verb == "OK" and frame.args[:1] == ("HELLO",):
            try:  # keyed at once: the board's next line is already under the new session
                self._session = protocol.parse_hello(frame.args[1:]).session
                self._last_event = 0
            except FrameError:
                pass  # hello() says what is wrong with it
        self._reply_mark = self._events_queued
        if pending[1] == "READ":  # its reading is newer than any event reading before it
            self._read_mark = self._arrivals
        pending[2].put(frame)

    def _on_event(self, frame: Frame) -> None:
        if frame.req_id <= self._last_event:
            log.warning("%s: refused a replayed event (id %d, last %d): %s", self.url,
                        frame.req_id, self._last_event, frame)
            return
        self._last_event = frame.req_id
        if self.on_event is None:
            return
        # Off the port loop: a listener that waits (a disk, a lock) must not hold up
        # every other board's replies; one board's events keep their order.
        if frame.verb != "READING":
            self._queued = None  # a reading after this event goes after it, not before
        else:
            with self._queued_lock:
                if self._queued is not None and self._queued[0] is not None:
                    self._queued[0] = (frame, self._arrivals)  # the newer one goes instead
                    return
            slot: list[tuple[Frame, int] | None] = [(frame, self._arrivals)]
            self._queued = slot
            self._events_queued += 1
            event_lanes().run(self.url, lambda: self._deliver_reading(slot))
            return
        self._events_queued += 1
        event_lanes().run(self.url, lambda: self._deliver(frame))

    def _deliver_reading(self, slot: list[tuple[Frame, int] | None]) -> None:
        """On the lane: the newest reading queued in the slot, unless a READ reply overtook it."""
        with self._queued_lock:
            taken, slot[0] = slot[0], None
        if taken is None or taken[1] < self._read_mark:
            self._delivered()  # a newer reading reached its reader: this one would go back
            return
        self._deliver(taken[0])

    def _delivered(self) -> None:
        with self._events_cv:
            self._events_done += 1
            self._events_cv.notify_all()

    def _deliver(self, frame: Frame) -> None:
        try:
            if self.on_event is not None:
                self.on_event(frame)
        except Exception:  # a listener bug must not take the lane down
            log.exception("%s: event callback failed on %s", self.url, frame)
        finally:
            self._delivered()

    def _await_events(self, mark: int) -> None:
        """Wait (a timeout at most) until the events queued before mark were delivered."""
        if event_lanes().serves_current_thread():
            return  # a listener asking its own board: its lane is this very thread
        with self._events_cv:
            self._events_cv.wait_for(lambda: self._events_done >= mark, timeout=self.timeout)

    def _on_undecodable(self, raw: bytes, err: FrameError, pending: _Pending) -> None:
        """A line failing the session's CRC: a board that lost its session, a v1 board, or junk."""
        if pending is not None:
            reply = _unkeyed_reply(raw) if self._session else None
            if reply is not None and reply.verb == "ERR" and reply.req_id == pending[0]:
                pending[2].put(reply)  # a board reset since HELLO: ERR 6 no-session
                return
            legacy = _legacy_reply(raw)
            if pending[1] == "HELLO" and legacy is not None and legacy.req_id == pending[0]:
                pending[2].put(_V1)
                return
        log.warning("%s: discarded line %r: %s", self.url, raw[:130], err)

    def _on_lost(self, exc: BaseException | None) -> None:
        was_closed, self._closed = self._closed, True
        if exc is not None and not was_closed:
            log.warning("%s: connection lost: %s", self.url, exc)
        pending = self._pending
        if pending is not None:
            pending[2].put(None)


class _Rebooted(Exception):
    """The board booted while HELLO waited: HELLO again."""


def _unkeyed_reply(raw: bytes) -> Frame | None:
    """The line as a reply under no session (what a board without one sends), or None."""
    try:
        frame = protocol.decode(raw, "")
    except FrameError:
        return None
    return frame if frame.kind == protocol.REPLY else None


def _legacy_reply(raw: bytes) -> Frame | None:
    """The line as a protocol v1 reply, or None."""
    try:
        frame = protocol.decode_legacy(raw)
    except FrameError:
        return None
    return frame if frame.kind == protocol.REPLY else None
