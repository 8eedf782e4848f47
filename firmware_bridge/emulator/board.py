"""The board side of protocol v2: sessions, replay refusal, relays, budgets, the failsafe,
the meter's faults, CONFIG and the boot banner."""

from __future__ import annotations

import dataclasses
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
    ERR_STORAGE,
    ERR_VERB,
    FrameError,
    MeterFault,
)
from firmware_bridge.protocol import EVENT, REPLY, REQUEST, Frame, Hello, Reading

_BUDGET = re.compile(r"\d{1,9}(\.\d{1,3})?")
_BOARD_ID = re.compile(r"[\x21-\x29\x2b-\x7e]{1,32}")  # printable, no '*', as the firmware
METER_ADDRESSES = range(1, 248)  # Modbus slave addresses


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
        save_config: Callable[[str, int], None] | None = None,
        polled_meter: bool = False,
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
        # The meter as the firmware sees it: no values until it first answers, then the last
        # good reading; "FAULT" once read() raised MeterFault, until it answers again.
        self.meter_state = "WAIT"
        self._last_good: Reading | None = None
        self.meter_addr = 1
        self._next_id = board_id  # CONFIG's id: the board's name from the next HELLO on
        # Persistent storage of CONFIG (an EEPROM on a real board); raising OSError = not saved.
        self.save_config = save_config
        # False: every reading reads the meter (an emulated meter answers at once). True: the
        # owner polls it (meter_answer), as firmware does, and readings show the last answer.
        self.polled_meter = polled_meter
        self._verbs: dict[str, Callable[..., list[object]]] = {
            "READ": self._on_read,
            "RELAY": self._on_relay,
            "HB": self._on_hb,
            "BUDGET": self._on_budget,
            "CONFIG": self._on_config,
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
            self.meter_state, self._last_good = "WAIT", None  # no values until it answers
            self.board_id = self._next_id  # what EEPROM holds
            self.power_on()

    def banner(self) -> bytes:
        """The boot banner, `!0 BOOT 2 <id> <kind> <relays>`, unkeyed: sent once at power-on."""
        return protocol.encode(EVENT, 0, "BOOT", protocol.VERSION, self._next_id, self.kind,
                               len(self.relays))

    def poll_meter(self) -> Reading | None:
        """Read the meter now (read() raising MeterFault is a fault); what meter_answer got."""
        with self.lock:
            try:
                reading: Reading | None = self.read()
            except MeterFault:
                reading = None
            self.meter_answer(reading)
            return reading

    def meter_answer(self, reading: Reading | None) -> None:
        """The meter answered (a reading) or failed (None): the board acts as the firmware."""
        with self.lock:
            if reading is None:
                if self.meter_state != "FAULT":
                    self.meter_state = "FAULT"  # said once per outage
                    self._events.append(("METER", ("FAULT",)))
                self._open_budgeted()
                return
            if self.meter_state == "FAULT":
                self._events.append(("METER", ("OK",)))
            self.meter_state, self._last_good = "OK", reading

    def _open_budgeted(self) -> None:
        """Without a meter no budget counts down: budget-held relays open (prepaid holds)."""
        for n, budget in enumerate(self.budgets):
            if budget is not None and self.relays[n]:
                self.relays[n] = False

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
        except _StorageError:
            return self._error(frame.req_id, ERR_STORAGE, "config-not-saved")
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
        self.board_id = self._next_id  # a CONFIG'd id shows from this HELLO on
        self.last_id, self.event_seq, self._greet = frame.req_id, 0, True
        hello = Hello(protocol.VERSION, self.board_id, self.kind, len(self.relays),
                      self.session, self.time_factor)
        return protocol.encode(REPLY, frame.req_id, "OK", "HELLO", *protocol.hello_fields(hello))

    def _on_read(self) -> list[object]:
        return list(self.reading_fields())

    def reading_fields(self) -> list[str]:
        """The reading's fields as the firmware sends them: BUDGET (optional to hosts) left
        out when the frame would pass MAX_LINE, rather than the reading lost."""
        with self.lock:
            reading = (None if self.polled_meter else self.poll_meter()) or self._last_good
            if reading is None:  # never answered: no values, not zeros
                fields = protocol.no_meter_fields(tuple(self.relays), self.meter_state,
                                                  self.uptime(), tuple(self.budgets))
            else:
                fields = protocol.reading_fields(dataclasses.replace(
                    reading, relays=tuple(self.relays), budgets=tuple(self.budgets),
                    uptime_s=self.uptime(), meter=self.meter_state))
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
            if (state == "1" and self.budgets[int(index)] is not None
                    and self.meter_state != "OK"
                    and (self.polled_meter or self.poll_meter() is None)):
                raise ValueError("no-meter-for-budget")  # nobody could count it down
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
            elif self.meter_state != "OK":
                self._open_budgeted()
        return [n, "-" if budget is None else f"{budget:.3f}"]

    def _on_config(self, board_id: str, address: str) -> list[object]:
        """Name the board and its meter's Modbus address, kept in persistent storage; the id
        counts from the next HELLO, the address from the next meter read."""
        if not _BOARD_ID.fullmatch(board_id):
            raise ValueError("id-not-1-to-32-chars")
        if not address.isdigit() or int(address) not in METER_ADDRESSES:
            raise ValueError("meter-address-not-1-to-247")
        if self.save_config is not None:
            try:
                self.save_config(board_id, int(address))
            except OSError as err:
                raise _StorageError(str(err)) from err
        self._next_id, self.meter_addr = board_id, int(address)
        return [board_id, int(address)]


class _StorageError(Exception):
    """save_config failed: CONFIG changed nothing."""


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
