"""The board side of protocol v1: answers frames, owns relays, opens them when heartbeats stop."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from firmware_bridge import protocol
from firmware_bridge.errors import ERR_ARG, ERR_FRAME, ERR_VERB, FrameError
from firmware_bridge.protocol import REPLY, REQUEST, Reading

_BUDGET = re.compile(r"\d{1,9}(\.\d{1,3})?")


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
    ):
        self.board_id = board_id
        self.kind = kind
        self.read = read
        self.relays = [False] * relay_count
        # Prepaid-meter behaviour: Wh a relay may still pass (None: no budget set).
        self.budgets: list[float | None] = [None] * relay_count
        self._events: list[bytes] = []
        self.failsafe_timeout = failsafe_timeout
        self.clock = clock
        # Shared with the microgrid so physics never sees a relay change half-way through a tick.
        self.lock = lock or threading.RLock()
        self.started = self.last_frame = clock()
        self.failsafe_tripped = False
        self._verbs: dict[str, Callable[..., list[object]]] = {
            "HELLO": self._on_hello,
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

    def uptime(self) -> float:
        """Seconds since the board powered on."""
        return self.clock() - self.started

    def handle(self, line: bytes | str) -> bytes:
        """One received line in, its reply line out: OK, or ERR for anything malformed."""
        try:
            frame = protocol.decode(line)
        except FrameError as err:
            return _error(_salvage_id(line), err.code, str(err))
        if frame.kind != REQUEST:
            return _error(frame.req_id, ERR_FRAME, "only > requests are accepted")
        with self.lock:  # any valid request proves the host is alive
            self.last_frame = self.clock()
            self.failsafe_tripped = False
        handler = self._verbs.get(frame.verb)
        if handler is None:
            return _error(frame.req_id, ERR_VERB, f"unknown verb {frame.verb}")
        try:
            args = handler(*frame.args)
        except TypeError:
            return _error(frame.req_id, ERR_ARG, f"wrong argument count for {frame.verb}")
        except ValueError as err:
            return _error(frame.req_id, ERR_ARG, str(err))
        return protocol.encode(REPLY, frame.req_id, "OK", frame.verb, *args)

    def check_failsafe(self) -> bool:
        """Open every relay after failsafe_timeout without a valid frame; True when it trips."""
        with self.lock:
            if self.failsafe_tripped or self.clock() - self.last_frame < self.failsafe_timeout:
                return False
            self.failsafe_tripped = True  # once per silence, so FAILSAFE is not repeated
            self.relays = [False] * len(self.relays)
            self._events.append(protocol.encode(protocol.EVENT, 0, "FAILSAFE"))
            return True

    def consume(self, relay: int, wh: float) -> None:
        """Take energy that passed a relay off its budget; open it when the budget is spent."""
        with self.lock:
            budget = self.budgets[relay]
            if budget is None or wh <= 0:
                return
            left = max(0.0, budget - wh)
            self.budgets[relay] = left
            if left == 0.0 and self.relays[relay]:
                self.relays[relay] = False
                self._events.append(protocol.encode(protocol.EVENT, 0, "EXHAUSTED", relay))

    def drain_events(self) -> list[bytes]:
        """Unsolicited lines the board owes the host (FAILSAFE, EXHAUSTED), oldest first."""
        with self.lock:
            events, self._events = self._events, []
        return events

    def _on_hello(self) -> list[object]:
        return [protocol.VERSION, self.board_id, self.kind, len(self.relays)]

    def _on_read(self) -> list[object]:
        return list(protocol.reading_fields(self.read()))

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
                self._events.append(protocol.encode(protocol.EVENT, 0, "EXHAUSTED", n))
        return [n, "-" if budget is None else f"{budget:.3f}"]


def _error(req_id: int, code: int, text: str) -> bytes:
    """An ERR reply; the text becomes one short argument (no spaces or '*')."""
    word = "".join(c if c.isascii() and c.isalnum() or c in "-_.:=" else "-" for c in text)
    return protocol.encode(REPLY, req_id, "ERR", code, word[:60] or "error")


def _salvage_id(line: bytes | str) -> int:
    """The request id of a broken frame when it can still be read, else 0."""
    raw = line.encode("ascii", "replace") if isinstance(line, str) else line
    if raw[:1] not in (b">", b"<", b"!"):
        return 0
    head = raw[1:].split(b" ", 1)[0].split(b"*", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 5 and int(head) <= 0xFFFF else 0
