"""The board side of protocol v1: answers frames, owns relays, opens them when heartbeats stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from firmware_bridge import protocol
from firmware_bridge.errors import FrameError
from firmware_bridge.protocol import ERR_ARG, ERR_CHECKSUM, ERR_FRAME, ERR_VERB, REPLY, Reading


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
        self.failsafe_timeout = failsafe_timeout
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.started = clock()
        self.last_frame = clock()
        self.failsafe_tripped = False

    def uptime(self) -> float:
        """Seconds since the board started."""
        return self.clock() - self.started

    def handle(self, line: bytes) -> bytes:
        """One received line in, the reply line out (ERR for anything malformed)."""
        try:
            frame = protocol.decode(line)
        except FrameError as err:
            code = ERR_CHECKSUM if "checksum" in str(err) else ERR_FRAME
            return protocol.encode(REPLY, _salvage_id(line), "ERR", code, _word(str(err)))
        if frame.kind != protocol.REQUEST:
            return protocol.encode(REPLY, frame.req_id, "ERR", ERR_FRAME, "not-a-request")
        with self.lock:
            self.last_frame = self.clock()
            self.failsafe_tripped = False
        handler = getattr(self, f"_on_{frame.verb.lower()}", None)
        if handler is None or not frame.verb.isupper():
            return protocol.encode(REPLY, frame.req_id, "ERR", ERR_VERB, f"unknown-verb-{frame.verb}"[:40])
        try:
            args = handler(*frame.args)
        except (TypeError, ValueError) as err:
            return protocol.encode(REPLY, frame.req_id, "ERR", ERR_ARG, _word(str(err)))
        return protocol.encode(REPLY, frame.req_id, "OK", frame.verb, *args)

    def check_failsafe(self) -> bool:
        """Open every relay when no frame came for failsafe_timeout; True when it just tripped."""
        with self.lock:
            if self.failsafe_tripped or self.clock() - self.last_frame < self.failsafe_timeout:
                return False
            self.failsafe_tripped = True
            was_closed = any(self.relays)
            self.relays = [False] * len(self.relays)
            return was_closed

    def _on_hello(self) -> list[object]:
        return [protocol.VERSION, self.board_id, self.kind, len(self.relays)]

    def _on_read(self) -> list[object]:
        return protocol.reading_fields(self.read())

    def _on_hb(self) -> list[object]:
        return []

    def _on_relay(self, index: str, state: str) -> list[object]:
        n = int(index)
        if not 0 <= n < len(self.relays) or state not in ("0", "1"):
            raise ValueError(f"relay {index} {state} is out of range")
        with self.lock:
            self.relays[n] = state == "1"
        return [n, state]


def _salvage_id(line: bytes) -> int:
    """The request id of a broken frame when it can still be read, else 0."""
    head = line[1:].split(b" ", 1)[0]
    return int(head) if head.isdigit() and int(head) <= 0xFFFF else 0


def _word(text: str) -> str:
    """Error text as one argument: no spaces or '*', short."""
    return "".join(c if c.isalnum() or c in "-_.:=" else "-" for c in text)[:60] or "error"
