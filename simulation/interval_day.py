"""The interval market's day: boundaries kept in step with the physics, settlement at the end.

At each interval boundary the physics stand still until every board's signed reading shows
the boundary's exact counters and the market has accounted the ended interval and cleared
the next, so each interval's readings are the boundary's, whatever the wall clock did.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from firmware_bridge.errors import BridgeError
from marketplace.intervals.batching import MAX_POSITIONS
from simulation.settle import wait_for
from simulation.stepper import Stepper
from web.runtime import Runtime

log = logging.getLogger(__name__)

DAY_S = 86_400
RETRY_BOUNDARIES = 8  # past the day's end, how many boundaries may retry refused positions


def day_start(start_hour: float, interval_s: int, now: float | None = None) -> float:
    """The market clock's start: the next time of day start_hour from now, on an interval
    boundary (so the market's days and intervals fall on the emulator's).

    Never more than an interval behind the wall clock, which the chain's block time follows:
    what the market dates from its clock (bid deadlines, order expiries) stays in the future.
    """
    now = time.time() if now is None else now
    start = math.floor(now / DAY_S) * DAY_S + start_hour * 3600.0
    if start < now:
        start += DAY_S
    return math.floor(start / interval_s) * interval_s


class BoundarySync:
    """The stepper's boundary hooks for the interval market."""

    def __init__(self, runtime: Runtime, people: list[dict[str, Any]], first_n: int,
                 on_wait: Callable[[str, float], None] | None = None):
        self.runtime = runtime
        # Told each boundary's waits in wall seconds (simulation.load): "readings", "clearing".
        self.on_wait = on_wait
        self.boards = [p["board"] for p in people]
        self.first_n = first_n  # the market's interval number of the stepper's boundary 0
        self._cleared: set[int] = set()
        self._seen = threading.Condition()
        runtime.hub.subscribe(self._on_publication)

    def before(self, k: int) -> None:
        """Wait until every board's signed reading has the boundary's whole-Wh counters."""
        physics = self.runtime.microgrid.physics()
        bridge = self.runtime.bridge
        # As the serial line carries the counters (3 decimals), then whole Wh as signed.
        want = {b: (math.floor(round(physics[b]["wh_in"], 3)),
                    math.floor(round(physics[b]["wh_out"], 3))) for b in self.boards}

        def stale() -> list[str]:
            return [b for b in self.boards
                    if (s := bridge.signed_reading(b)) is None or (s.wh_in, s.wh_out) != want[b]]

        started = time.monotonic()
        deadline = started + 30
        while (late := stale()) and time.monotonic() < deadline:
            time.sleep(0.2)  # a board's reading is signed once a second at most
            for board in late:
                try:
                    bridge.read(board)  # signs it once its second is due
                except BridgeError as err:  # a board slow to answer: asked again in a moment
                    log.warning("boundary %d: %s", k, err)
        if late:
            raise TimeoutError(f"simulation: boards {late} gave no fresh signed reading at "
                               f"boundary {k}")
        if self.on_wait is not None:
            self.on_wait("readings", time.monotonic() - started)

    def after(self, k: int) -> None:
        """Wait until the market published the clearing of the interval the boundary opens."""
        n = self.first_n + k
        started = time.monotonic()  # the clock is on the boundary: the market's turn
        with self._seen:
            if not self._seen.wait_for(lambda: n in self._cleared, timeout=60):
                raise TimeoutError(f"simulation: interval {n} was not cleared within 60 s")
        if self.on_wait is not None:
            self.on_wait("clearing", time.monotonic() - started)

    def _on_publication(self, topic: str, payload: dict[str, Any]) -> None:
        if topic != "interval":
            return
        with self._seen:
            self._cleared.add(int(payload["n"]))
            self._seen.notify_all()


def close_orders(people: list[dict[str, Any]], market: Any) -> None:
    """Cancel every standing order, so the day's last boundary clears nothing more."""
    for p in people:
        if market.intervals.order_of(p["address"]) is not None:
            market.intervals.cancel_order(p["address"])


def settle_intervals(runtime: Runtime, stepper: Stepper, say: Callable[[str], None]) -> None:
    """Stop the physics, move the clock past the day's end, and wait for every fill to settle.

    The market settles every participant at the end of a day: the clock jumps to the next
    emulated midnight, then on one interval at a time (each boundary retries what the
    contract refused) until nothing is left unsettled.
    """
    intervals = runtime.market.intervals
    stepper.pause()
    say("end of the day: settling every participant's position ...")
    interval_s = intervals.boundaries.interval_s
    now = runtime.clock.now()
    # To the day's end (the next midnight; none when the day ended on one): a day from
    # midnight ends on the next, not a day later.
    runtime.clock.advance(math.ceil(now / DAY_S) * DAY_S - now)

    # Each boundary settles one batch of at most MAX_POSITIONS: a town's day-end positions
    # (every participant's) need that many boundaries before any retry counts.
    people = len({f["address"] for f in intervals.istore.unsettled()})
    boundaries = RETRY_BOUNDARIES + math.ceil(people / MAX_POSITIONS)
    left = [boundaries]

    def settled() -> bool:
        if not intervals.istore.unsettled() and not intervals.istore.batches(status="sent"):
            return True
        if intervals.istore.batches(status="sent"):
            time.sleep(0.2)  # a batch in flight: its receipt first
            return False
        if left[0] == 0:
            raise TimeoutError(f"simulation: positions still unsettled {boundaries} "
                               "intervals past the day's end")
        left[0] -= 1
        sent = _newest_batch(intervals)
        runtime.clock.advance(interval_s)  # the next boundary retries what was refused
        # Its batch goes out on the market's own loop, whose pass grows with the town: wait
        # for it (a boundary passed unseen would be a boundary lost), 30 s at most.
        deadline = time.monotonic() + 30
        while _newest_batch(intervals) == sent and intervals.istore.unsettled() \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        return False

    try:
        wait_for(settled, "the interval positions to settle", timeout=180 + 30 * boundaries)
    except TimeoutError as err:  # the books show what stayed unsettled, as a failing check
        say(str(err))
    wait_for(lambda: not runtime.txm.pending(), "pending transactions", timeout=60)


def _newest_batch(intervals: Any) -> int:
    """The id of the interval market's newest settle batch (0 before the first)."""
    newest = 0
    while batches := intervals.istore.batches(after=newest, limit=1000):
        newest = batches[-1]["id"]
    return newest
