"""The fault injector: one part at a time SIGKILLed, restarted, and its recovery measured.

Kinds are drawn from a seeded generator in shuffled rounds, so a day of k rounds kills every
kind k times in a replayable order. Recovery is measured on the wall clock in three steps:
the part answers again; the market clears an interval that began after that; the chain
settles a position after that (when anything was due).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from simulation.chaos.parts import ChainPart, Part

DOWNTIME_S = 1.0  # how long a killed part stays down before its supervisor restarts it


@dataclass
class Fault:
    """One injected fault and what followed."""

    kind: str
    part: str
    at: float  # wall clock (epoch s) of the kill
    emulated_at: float  # the emulated hour of the day at the kill
    restarted_after_s: float = 0.0
    answered_after_s: float | None = None
    cleared_after_s: float | None = None
    settled_after_s: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The fault as the report's JSON holds it."""
        return asdict(self)


class Probe:
    """What the injector asks the market: the latest cleared interval, the settled count."""

    def __init__(self, cleared: Callable[[], int | None], settled: Callable[[], int | None],
                 due: Callable[[], bool], hour: Callable[[], float]) -> None:
        self.cleared = cleared
        self.settled = settled
        self.due = due  # whether any billed Wh wait for settlement
        self.hour = hour


def schedule(kinds: Sequence[str], count: int, seed: int) -> list[str]:
    """count kinds to kill, in seeded shuffled rounds of every kind."""
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < count:
        round_ = list(kinds)
        rng.shuffle(round_)
        order += round_
    return order[:count]


class Injector:
    """Kills parts by kind, restarts them and measures their recovery."""

    def __init__(self, parts: dict[str, list[Part]], probe: Probe, seed: int,
                 market_wait_s: float, answer_wait_s: float = 60.0) -> None:
        self.parts = parts
        self.probe = probe
        self.rng = random.Random(seed)
        self.answer_wait_s = answer_wait_s  # how long a restarted part may take to answer
        self.market_wait_s = market_wait_s  # … and the market to clear and settle after it
        self.faults: list[Fault] = []

    def inject(self, kind: str) -> Fault:
        """Kill one part of this kind (chosen at random), restart it, wait for recovery."""
        part = self.rng.choice(self.parts[kind])
        fault = Fault(kind, part.name, time.time(), round(self.probe.hour(), 3))
        self.faults.append(fault)
        head = part.head() if isinstance(part, ChainPart) else None
        start = time.monotonic()
        part.kill()
        time.sleep(DOWNTIME_S)
        part.start()
        fault.restarted_after_s = round(time.monotonic() - start, 3)
        if head is not None:
            after = part.head()
            fault.detail = {"head_before": head, "head_after": after}
            if after is not None and after < head:
                fault.note = f"rewound {head - after} blocks to the last state dump"
        fault.answered_after_s = self._until(part.ready, start, start + self.answer_wait_s)
        if fault.answered_after_s is None:
            fault.note = _more(fault.note, "did not answer again")
            return fault
        answered = time.monotonic()
        cleared, settled = self.probe.cleared(), self.probe.settled()
        due = self.probe.due()
        fault.cleared_after_s = self._until(lambda: _past(self.probe.cleared(), cleared, 2),
                                            start, answered + self.market_wait_s)
        if not due:
            fault.note = _more(fault.note, "nothing was due for settlement")
            return fault
        fault.settled_after_s = self._until(lambda: _past(self.probe.settled(), settled, 1),
                                            start, answered + self.market_wait_s)
        return fault

    def _until(self, done: Callable[[], bool], since: float, deadline: float) -> float | None:
        """Seconds from since until done() (None at the deadline)."""
        while time.monotonic() < deadline:
            try:
                if done():
                    return round(time.monotonic() - since, 3)
            except Exception:  # noqa: BLE001 - a part still coming up answers with errors
                pass
            time.sleep(0.2)
        return None


def _more(note: str, text: str) -> str:
    return f"{note}; {text}" if note else text


def _past(now: int | None, then: int | None, by: int) -> bool:
    """Whether a counter moved at least `by` past its earlier value."""
    return now is not None and now >= (then or 0) + by
