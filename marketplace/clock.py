"""Clocks: the wall clock for the portal, a hand-driven one for tests of deadlines."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time in seconds since the epoch."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        """The current time in seconds."""
        return time.time()


class ManualClock:
    """A clock that moves only when told to, so deadline tests never sleep."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current time in seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now


class ScaledClock:
    """Emulated time: runs `speed` times faster than the wall clock, from `start`.

    The emulator's physics steps by the same monotonic clock times the same speed, so
    auction deadlines and deal timers keep pace with the simulated day.
    """

    def __init__(self, speed: float, start: float | None = None):
        self.speed = speed
        self._start = time.time() if start is None else start
        self._origin = time.monotonic()

    def now(self) -> float:
        """The current emulated time in seconds."""
        return self._start + (time.monotonic() - self._origin) * self.speed


class SteppedClock(ManualClock):
    """Emulated time moved by a driver in the same steps as a stepped emulator's physics.

    `speed` is what the emulator declares (its boards' time factor); the clock itself moves
    only on advance(), so a replayed day's deadlines fall on the same physics steps.
    """

    def __init__(self, speed: float, start: float | None = None):
        super().__init__(time.time() if start is None else start)
        self.speed = speed
