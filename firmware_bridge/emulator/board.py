"""The board side of protocol v2: sessions, replay refusal, relays, budgets, the failsafe."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable

from firmware_bridge import protocol
from firmware_bridge.errors import (
    ERR_ARG,
    ERR_CHECKSUM,
    ERR_FRAME,
    ERR_REPLAY,
    ERR_SESSION,
    ERR_VERB,
    FrameError,
)
from firmware_bridge.protocol import EVENT, REPLY, REQUEST, Frame, Hello, Reading

_BUDGET = re.compile(r"\d{1,9}(\.\d{1,3})?")


def _random_session() -> str:
    return f"{secrets.randbits(32):08X}"


class BoardEmulator:
    """Frame handling of one board; the meter values come from a read() callback."""

    def __init__(
        self,
        board_id: str,
        kind: str,
        read: Callable[[], Reading],
        relay_count: int = 1,
        failsafe_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        lock: threading.RLock | None = None,
        time_factor: float = 1.0,
        new_session: Callable[[], str] = _random_session,
    ):
        self.board_id = board_id
        self.kind = kind
        self.read = read
        self.relays = [False] * relay_count
        # Prepaid-meter behaviour: Wh a relay may still pass (None: no budget set).
        self.budgets: list[float | None] = [None] * relay_count
        self.time_factor = time_factor  # declared in HELLO: the emulator's speed
        self.new_session = new_session
        self.session: str | None = None  # opened by each HELLO; none after power-on
        self.last_id = 0  # the newest request id of the session: older ones are replays
        self.event_seq = 0  # the last event's id in the session
        self._events: list[tuple[str, tuple[object, ...]]] = []
        self._greet = False
        self.refusals: Counter[int] = Counter()  # ERR replies sent, by code: for diagnostics
        self.failsafe_timeout = failsafe_timeout
        self.clock = clock
        # Shared with the microgrid so physics never sees a relay change half-way through a tick.
        self.lock = lock or threading.RLock()
        self.started = self.last_frame = clock()
        self.failsafe_tripped = False
        self._verbs: dict[str, Callable[..., list[object]]] = {
            "READ": self._on_read,
            "RELAY": self._on_relay,
            "HB": self._on_hb,
            "BUDGET": self._on_budget,
        }

    def power_on(self) -> None:
        """Restart uptime and the failsafe timer, as when the board is plugged in."""
        with self.lock:
            self.started = self.last_frame = self.clock()
            self.failsafe_tripped = False
            self.session = None  # a power cycle forgets the session: the host must HELLO

    def reboot(self) -> None:
        """A power cycle as the firmware boots: every relay open, no budget, no session."""
        with self.lock:
            self.relays = [False] * len(self.relays)
            self.budgets = [None] * len(self.budgets)
            self.power_on()

    def uptime(self) -> float:
        """Seconds since the board powered on."""
        return self.clock() - self.started

    def answer(self, line: bytes | str) -> list[bytes]:
        """What the board sends for one line: its reply, and a reading after a v2 HELLO."""
        with self.lock:
            self._greet = False  # set by a HELLO that opens a session in this very line
            out = [self.handle(line)]
            if self._greet:  # a host that (re)connects learns relays and budgets at once
                self._greet = False
                reading = self.event("READING", *self.reading_fields())
                out += [reading] if reading else []
            return out

    def handle(self, line: bytes | str) -> bytes:
        """One received line in, its reply line out: OK, or ERR for anything refused."""
        try:
            frame, body, given = protocol.split(line)
        except FrameError as err:
            legacy = self._legacy_hello(line) if err.code == ERR_CHECKSUM else None
            return legacy or self._error(_salvage_id(line), err.code, str(err))
        with self.lock:
            return self._handle(frame, body, given)

    def _handle(self, frame: Frame, body: str, given: str) -> bytes:
        """A well-formed frame: its session, freshness, then its verb."""
        hello = frame.kind == REQUEST and frame.verb == "HELLO"
        if self.session is None and not hello:
            return self._error(frame.req_id, ERR_SESSION, "no-session-send-HELLO")
        key = protocol.key_for(frame, self.session)
        try:
            protocol.verify(body, given, key)
        except FrameError as err:
            return self._error(frame.req_id, err.code, str(err), key)
        if frame.kind != REQUEST:
            return self._error(frame.req_id, ERR_FRAME, "only > requests are accepted", key)
        if frame.req_id == 0:
            return self._error(0, ERR_FRAME, "request id 0 names no request", key)
        if hello:
            return self._on_hello(frame)
        if frame.req_id <= self.last_id:  # a repeated or older id: a replay, acted on never
            return self._error(frame.req_id, ERR_REPLAY, f"replay: id not above {self.last_id}")
        self.last_id = frame.req_id
        self.last_frame = self.clock()  # a fresh request proves the host is alive
        self.failsafe_tripped = False
        handler = self._verbs.get(frame.verb)
        if handler is None:
            return self._error(frame.req_id, ERR_VERB, f"unknown verb {frame.verb}")
        try:
            args = handler(*frame.args)
        except TypeError:
            return self._error(frame.req_id, ERR_ARG, f"wrong argument count for {frame.verb}")
        except ValueError as err:
            return self._error(frame.req_id, ERR_ARG, str(err))
        return protocol.encode(REPLY, frame.req_id, "OK", frame.verb, *args,
                               session=self.session)

    def event(self, verb: str, *args: object) -> bytes | None:
        """An unsolicited frame with the session's next event id; None without a session."""
        with self.lock:
            if self.session is None or self.event_seq >= protocol.MAX_ID:
                return None  # nobody could accept it; the host re-HELLOs before the ids run out
            line = protocol.encode(EVENT, self.event_seq + 1, verb, *args, session=self.session)
            self.event_seq += 1  # only once it fits, as the firmware numbers what it sent
            return line

    def check_failsafe(self) -> bool:
        """Open every relay after failsafe_timeout without a fresh request; True when it trips."""
        with self.lock:
            if self.failsafe_tripped or self.clock() - self.last_frame < self.failsafe_timeout:
                return False
            self.failsafe_tripped = True  # once per silence, so FAILSAFE is not repeated
            self.relays = [False] * len(self.relays)
            self._events.append(("FAILSAFE", ()))
            return True

    def consume(self, relay: int, wh: float) -> None:
        """Take energy that passed a relay off its budget; open it when the budget is spent."""
        with self.lock:
            budget = self.budgets[relay]
            if budget is None or wh <= 0:
                return
            left = budget - wh
            # The physics never passes more than allowance(): what is left below a nWh is
            # float rounding of a budget spent exactly, not energy the relay may still pass.
            left = 0.0 if left < 1e-9 else left
            self.budgets[relay] = left
            if left == 0.0 and self.relays[relay]:
                self.relays[relay] = False
                self._events.append(("EXHAUSTED", (relay,)))

    def allowance(self, relay: int = 0) -> float:
        """Wh the relay may pass now: none when open, its budget when one is set, else any."""
        with self.lock:
            if not self.relays[relay]:
                return 0.0
            budget = self.budgets[relay]
            return float("inf") if budget is None else budget

    def drain_events(self) -> list[bytes]:
        """Unsolicited lines the board owes the host (FAILSAFE, EXHAUSTED), oldest first."""
        with self.lock:
            events, self._events = self._events, []
            # Numbered and keyed when sent, so they belong to the session they go out in.
            return [line for verb, args in events if (line := self.event(verb, *args))]

    def _error(self, req_id: int, code: int, text: str, key: str | None = None) -> bytes:
        """An ERR reply keyed with the session (or with `key`: none for a HELLO's)."""
        self.refusals[code] += 1
        return _error(req_id, code, text, (self.session or "") if key is None else key)

    def _legacy_hello(self, line: bytes | str) -> bytes | None:
        """A v1 host's HELLO, answered in v1 framing with version 2, so it refuses us clearly."""
        try:
            frame = protocol.decode_legacy(line)
        except FrameError:
            return None
        if frame.kind != REQUEST or frame.verb != "HELLO" or frame.args:
            return None
        return protocol.encode_legacy(REPLY, frame.req_id, "OK", "HELLO", protocol.VERSION,
                                      self.board_id, self.kind, len(self.relays))

    def _on_hello(self, frame: Frame) -> bytes:
        """Open a new session; HELLO is no heartbeat, as a recorded one proves nobody alive."""
        if frame.args:
            return self._error(frame.req_id, ERR_ARG, "wrong argument count for HELLO", "")
        self.session = self.new_session()
        self.last_id, self.event_seq, self._greet = frame.req_id, 0, True
        hello = Hello(protocol.VERSION, self.board_id, self.kind, len(self.relays),
                      self.session, self.time_factor)
        return protocol.encode(REPLY, frame.req_id, "OK", "HELLO", *protocol.hello_fields(hello))

    def _on_read(self) -> list[object]:
        return list(self.reading_fields())

    def reading_fields(self) -> list[str]:
        """The reading's fields as the firmware sends them: BUDGET (optional to hosts) left
        out when the frame would pass MAX_LINE, rather than the reading lost."""
        fields = protocol.reading_fields(self.read())
        try:  # the longest frame it goes out in: a READ reply with the largest id
            protocol.encode(REPLY, protocol.MAX_ID, "OK", "READ", *fields,
                            session=self.session or "")
        except FrameError:
            return [f for f in fields if not f.startswith("BUDGET=")]
        return fields

    def _on_hb(self) -> list[object]:
        return []

    def _on_relay(self, index: str, state: str) -> list[object]:
        if not index.isdigit() or not 0 <= int(index) < len(self.relays):
            raise ValueError(f"relay {index} does not exist (0..{len(self.relays) - 1})")
        if state not in ("0", "1"):
            raise ValueError(f"relay state {state} is not 0 or 1")
        with self.lock:
            if state == "1" and self.budgets[int(index)] == 0.0:
                raise ValueError("budget-exhausted")
            self.relays[int(index)] = state == "1"
        return [int(index), state]

    def _on_budget(self, index: str, value: str) -> list[object]:
        if not index.isdigit() or not 0 <= int(index) < len(self.relays):
            raise ValueError(f"relay {index} does not exist (0..{len(self.relays) - 1})")
        if value == "-":
            budget = None
        elif _BUDGET.fullmatch(value):
            budget = float(value)  # as the firmware: at most 9 whole digits and 3 decimals
        else:
            raise ValueError(f"budget {value} is not Wh like 12.5 (3 decimals at most) or -")
        n = int(index)
        with self.lock:
            self.budgets[n] = budget
            if budget == 0.0 and self.relays[n]:
                self.relays[n] = False  # nothing left to pass: open now, as the firmware does
                self._events.append(("EXHAUSTED", (n,)))
        return [n, "-" if budget is None else f"{budget:.3f}"]


def _error(req_id: int, code: int, text: str, session: str) -> bytes:
    """An ERR reply; the text becomes one short argument (no spaces or '*')."""
    word = "".join(c if c.isascii() and c.isalnum() or c in "-_.:=" else "-" for c in text)
    return protocol.encode(REPLY, req_id, "ERR", code, word[:60] or "error", session=session)


def _salvage_id(line: bytes | str) -> int:
    """The request id of a broken frame when it can still be read, else 0."""
    raw = line.encode("ascii", "replace") if isinstance(line, str) else line
    if raw[:1] not in (b">", b"<", b"!"):
        return 0
    head = raw[1:].split(b" ", 1)[0].split(b"*", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 5 and int(head) <= 0xFFFF else 0
