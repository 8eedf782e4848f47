"""One shape for the portal's background jobs: a pass each period, its failures logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Loop:
    """A job that runs one pass every interval_s (sooner when woken) until stopped.

    The job itself is a plain one-pass method (TxManager.poll, Market.tick, …) that knows
    nothing of threads; a pass that raises is logged and the next one runs as usual, so a
    node's or a board's hiccup never ends a loop.
    """

    name: str
    step: Callable[[], object]
    interval_s: float
    stopped: threading.Event
    wake: threading.Event = field(default_factory=threading.Event)
    gap_s: float = 0.0  # rest after each pass, so a burst of wake-ups makes one pass
    after: Callable[[], object] | None = None  # once, when the loop ends (release a lease)

    def run(self) -> None:
        """Run passes until stopped, then the job's closing step (a background task)."""
        threading.current_thread().name = f"loop:{self.name}"  # logs (and tests) tell them apart
        while not self.stopped.is_set():
            self.wake.wait(self.interval_s)
            self.wake.clear()
            if self.stopped.is_set():
                break
            try:
                self.step()
            except Exception:  # one bad pass must not end the job
                log.exception("%s: a pass failed; the next one runs as usual", self.name)
            if self.gap_s:
                time.sleep(self.gap_s)
        if self.after is not None:
            try:
                self.after()
            except Exception as err:
                log.warning("%s: not closed cleanly: %s", self.name, err)
