"""The driver of a simulated day: the portal's runtime up, a day of trading, its books, a report.

The portal's Runtime is started with N producers and M consumers (chain, contracts, boards
on ptys behind the pyserial bridge, the market), on emulated time; automatic agents list
and bid; at the end of the day every deal is settled, the meters, the chain and the store
are read separately and put against each other (simulation.reconcile), and a report with
plots is written (simulation.report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.heap import settle_heap
from marketplace.clock import SteppedClock
from simulation.books import read_books
from simulation.day import open_day
from simulation.figures import day_figures
from simulation.interval_books import read_interval_books
from simulation.interval_day import day_start, settle_intervals
from simulation.load import LoadMeter
from simulation.plan import Plan
from simulation.reconcile import Reconciliation, reconcile
from simulation.report import write_report
from simulation.settle import settle
from web import DEFAULTS
from web.runtime import Runtime


def runtime_config(plan: Plan, clock: SteppedClock) -> dict[str, Any]:
    """The portal's config for a day: its chain and participants, on the day's clock."""
    specs = [{k: v for k, v in p.items() if k not in ("reserve_wei", "limit_wei", "reserve_wh")}
             for p in plan.participants]
    return {
        **DEFAULTS,
        "CHAIN_URI": plan.chain, "CHAIN_FALLBACK": False,
        "DATA_DIR": str(plan.out / "var"), "STORE_PATH": None,
        "SCRYPT_N": 2**10,  # throwaway accounts: cheap keystores
        "CLOCK": clock, "EMULATOR_SPEED": plan.speed,
        "EMULATOR_START_HOUR": plan.trade_start_hour, "PARTICIPANTS": specs,
        # The driver steps the physics and the clock itself, so a seed is one replayable day;
        # the market clock is emulated time already, so intervals need no time factor.
        "EMULATOR_STEPPED": True, "EMULATOR_SEED": plan.seed, "EMULATOR_STEP_S": plan.step_s,
        "MARKET_TIME_FACTOR": 1, "INTERVAL_S": plan.interval_s,
        "DEMO_ACCOUNTS": True,  # the day's participants are seated as the demo's are
        "TICK_S": 0.2, "EVENT_POLL_S": 2.0,
        "SOFT_CLOSE_S": 60, "SOFT_CLOSE_CAP_S": 300,  # emulated seconds, as every timer
        **({"SETTLE_WH": plan.settle_wh} if plan.settle_wh else {}),
    }


def unsettled_wh(runtime: Runtime) -> float:
    """Wh bought, metered and accounted but not settled on chain yet: the settlement lag."""
    return sum(f["billed_wh"] or 0 for f in runtime.market.intervals.istore.unsettled()
               if f["side"] == "buy")


class Simulation:
    """One day: start the stack, let the agents trade, settle, read the books, stop."""

    def __init__(self, plan: Plan, progress: Callable[[str], None] = print):
        self.plan = plan
        self.say = progress
        # The market's and the day's time. The interval market's starts on a boundary at the
        # emulator's time of day (its intervals and days are the emulator's); the lots market's
        # at the wall clock, as before: its deal timers meet the chain's block time (a clock
        # up to a day ahead had closeDeal sent and refused over and over).
        start = day_start(plan.trade_start_hour, plan.interval_s) if plan.market == "intervals" \
            else None
        self.clock = SteppedClock(plan.speed, start)

    def run(self) -> tuple[Reconciliation, Path]:
        """Run the day and write the report; (reconciliation, summary path)."""
        plan = self.plan
        (plan.out / "var").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.say(f"starting {plan.producers} producers, {plan.consumers} consumers on "
                 f"{plan.chain} (emulated time ×{plan.speed:g}) ...")
        runtime = Runtime(runtime_config(plan, self.clock))
        load = LoadMeter(lambda: unsettled_wh(runtime) if plan.market == "intervals" else None)
        try:
            runtime.start()
            load.phases_s["start"] = round(time.monotonic() - started, 1)
            self.say(f"stack up in {load.phases_s['start']:.0f} s")
            load.watch_loops(runtime.loops)
            runtime.txm.subscribe(load.on_transaction)
            runtime.bridge.subscribe_events(load.on_board_event)
            load.start()
            day = open_day(runtime, plan, self.clock, self.say, load.boundary_wait)
            load.frozen_objects = settle_heap()  # the stack and agents stay for the day
            trading = time.monotonic()
            day.trade()
            load.phases_s["trade"] = round(time.monotonic() - trading, 1)
            if plan.market == "intervals":
                settle_intervals(runtime, day.stepper, self.say)
                self.say("reading the books: published intervals, chain events and state ...")
                books = read_interval_books(day)
                cleared = [{"start": h["start"], "price_wei": int(h["price_wei"]),
                            "volume_wh": h["volume_wh"]}
                           for h in runtime.market.intervals.history(10_000)
                           if h["price_wei"] is not None]
                prices = [c["price_wei"] for c in cleared]
            else:
                settle(runtime, day.people, self.say, day.stepper)
                self.say("reading the books: meters over serial, chain events and state, "
                         "store ...")
                record = read_books(day)
            load.stop()
            load_figures = load.figures()  # before stop(): the chain node's CPU is still there
        finally:
            load.stop()
            runtime.stop()
        if plan.market == "lots":
            books = reconcile(record)
            prices = [d["price"] for d in books.deals]
        sold_key = "billed_wh" if plan.market == "intervals" else "burned_wh"
        books.figures = day_figures(day, books, prices, {
            r["name"]: r[sold_key] for r in books.rows if r["role"] == "producer"})
        if plan.market == "intervals":  # each interval's clearing price, for prices.png
            books.figures["interval_prices"] = cleared
        books.figures["load"] = load_figures
        self.say("writing the report ...")
        wall = time.monotonic() - started
        summary = write_report(plan, books, day.samples, day.names(), day.hour, wall)
        verdict = "holds" if books.ok else f"FAILS ({len(books.failures())} checks)"
        self.say(f"done in {wall:.0f} s: {plan.market} market, "
                 f"{books.total['delivered_wh']} Wh delivered, reconciliation {verdict}")
        return books, summary
