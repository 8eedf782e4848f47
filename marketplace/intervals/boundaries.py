"""Interval boundaries on the market clock: interval n covers [n*L, (n+1)*L), L = interval_s /
time_factor, so every worker numbers intervals alike; interval n starts at emulated n*interval_s."""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86_400


@dataclass(frozen=True)
class Boundaries:
    """Interval numbers, bounds and days of the market clock."""

    interval_s: int = 900  # emulated seconds per interval
    time_factor: float = 1.0  # emulated seconds per market-clock second

    @property
    def length(self) -> float:
        """An interval's length on the market clock, in seconds."""
        return self.interval_s / self.time_factor

    def index(self, now: float) -> int:
        """The interval under way at market-clock time now."""
        return math.floor(now / self.length)

    def start(self, n: int) -> float:
        """When interval n begins (market clock)."""
        return n * self.length

    def end(self, n: int) -> float:
        """When interval n ends (market clock): the next one's start."""
        return (n + 1) * self.length

    def emulated(self, n: int) -> int:
        """Interval n's start in emulated seconds."""
        return n * self.interval_s

    def day(self, n: int) -> int:
        """The emulated day interval n falls in."""
        return self.emulated(n) // DAY_S

    def ends_day(self, n: int) -> bool:
        """Whether interval n's end crosses into the next day (the day's last interval)."""
        return self.day(n + 1) != self.day(n)
