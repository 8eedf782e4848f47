"""The day's time: the emulator's physics and the market clock moved together in fixed steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.emulator import Microgrid
from marketplace.clock import SteppedClock


@dataclass
class Stepper:
    """Moves a stepped Microgrid and the market's SteppedClock by the same emulated seconds.

    Paced at `speed` emulated seconds per wall second (never faster: the stack's loops run on
    wall time), so the weather and loads of a seed are the same whatever the machine's load;
    at every `interval_s` boundary of the day it notes each board's physics (the metrics'
    per-interval truth: what loads wanted, what batteries held).
    """

    microgrid: Microgrid
    clock: SteppedClock
    step_s: float
    speed: float
    interval_s: int = 900
    elapsed_s: float = 0.0  # emulated seconds stepped since the day began
    paused: bool = False  # the physics stand still, the clock runs on (the books are closing)
    boundaries: list[dict[str, Any]] = field(default_factory=list)
    # Called at each interval boundary with the physics stopped on it: before the clock
    # reaches it (e.g. fresh signed readings) and after (e.g. the market has cleared).
    before_boundary: Callable[[int], None] | None = None
    after_boundary: Callable[[int], None] | None = None
    _wall0: float = field(default_factory=time.monotonic)
    _wall_s: float = 0.0

    def __post_init__(self) -> None:
        if self.interval_s % self.step_s:
            raise ValueError(f"a physics step of {self.step_s} s does not divide the "
                             f"{self.interval_s} s interval")
        self._note()

    def step(self) -> None:
        """One step: physics (unless paused) and the clock forward, then wait for the wall."""
        boundary = None
        if not self.paused:
            self.microgrid.advance(self.step_s)
            self.elapsed_s += self.step_s
            if self.elapsed_s % self.interval_s < 1e-6:
                self._note()
                boundary = round(self.elapsed_s / self.interval_s)
        if boundary is not None and self.before_boundary:
            self.before_boundary(boundary)
        self.clock.advance(self.step_s)
        if boundary is not None and self.after_boundary:
            self.after_boundary(boundary)
            self._wall0, self._wall_s = time.monotonic(), 0.0  # the wait is no debt to repay
        self._wall_s += self.step_s / self.speed
        ahead = self._wall0 + self._wall_s - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        else:  # behind (a busy machine): start counting from now, never rush to catch up
            self._wall0, self._wall_s = time.monotonic(), 0.0

    def pause(self) -> None:
        """Stop the physics for good (the clock keeps moving for deadlines still due)."""
        if self.paused:
            return
        if self.elapsed_s % self.interval_s > 1e-6:
            self._note()  # the day's last, partial interval
        self.paused = True
        self.microgrid.pause()

    def _note(self) -> None:
        self.boundaries.append({"t": self.elapsed_s, "physics": self.microgrid.physics(),
                                "line_loss_wh": self.microgrid.line_loss_wh})
