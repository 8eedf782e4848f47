"""The trading day: participants unlocked and funded, agents acting in rounds, samples taken."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gridbid_client.local import LocalParty
from marketplace.clock import SteppedClock
from marketplace.contract_enums import EscrowMarket
from simulation.agents import (
    ConsumerAgent,
    ProducerAgent,
    StandingAgent,
    buy_fields,
    sell_fields,
)
from simulation.interval_day import BoundarySync, close_orders
from simulation.journal import DAY, WARMUP, ChainJournal
from simulation.plan import ETHER, Plan
from simulation.stepper import Stepper
from web.runtime import Runtime

DEPOSIT_WEI = 20 * ETHER  # each consumer's escrow for the day


@dataclass
class TradingDay:
    """The day under way: who trades, their agents, the chain's records, the plots' samples."""

    runtime: Runtime
    plan: Plan
    clock: SteppedClock
    people: list[dict[str, Any]]  # the plan's participants with their address and unlocked key
    eth_start: dict[str, int]  # Ether balances before the day
    journal: ChainJournal
    producers: list[ProducerAgent]
    consumers: list[ConsumerAgent]
    t0: float  # clock time trading started at …
    first_hour: float  # … and its hour since the midnight before the day
    stepper: Stepper  # moves the physics and the clock
    say: Callable[[str], None] = print
    samples: list[dict[str, Any]] = field(default_factory=list)

    def hour(self, at: float | None = None) -> float:
        """Hours since midnight before the day's start (not wrapped at 24) of a clock time."""
        now = self.clock.now() if at is None else at
        return self.first_hour + (now - self.t0) / 3600.0

    def names(self) -> dict[str, str]:
        """Each participant's name by address."""
        return {p["address"]: p["name"] for p in self.people}

    def trade(self) -> None:
        """Let the agents act in rounds until the day's hours are over, sampling as it goes."""
        plan, market = self.plan, self.runtime.market
        rng = random.Random(plan.seed)
        end = plan.start_hour + plan.hours  # first_hour is the warm-up's start
        next_sample = next_report = self.hour()
        # Setup's gas (deposits included) is reported apart, as is a warm-up's.
        self.journal.phase = WARMUP if plan.warmup_hours else DAY
        # The agents act as often as they did on the wall clock: every agent period's steps.
        every = max(1, round(plan.agent_period_s * plan.speed / plan.step_s))
        steps = 0
        closing = plan.market == "intervals"
        while (hour := self.hour()) < end - 1e-9:
            if self.journal.phase == WARMUP and hour >= plan.start_hour - 1e-9:
                self.journal.phase = DAY
            if closing and hour + plan.step_s / 3600.0 >= end - 1e-9:
                close_orders(self.people, market)  # the day's last boundary clears nothing
                closing = False
            if steps % every == 0:
                for agent in self.producers:
                    agent.act(market)
                rng.shuffle(self.consumers)  # nobody is always first to bid
                for agent in self.consumers:
                    agent.act(market, hour)
            if hour >= next_sample:
                self._sample(hour)
                self.journal.poll()
                next_sample = hour + plan.sample_s / 3600.0
            if hour >= next_report:
                self._progress(hour)
                next_report = int(hour) + 1.0
            self.stepper.step()
            steps += 1
        # The day's physics end with its trading hours, so a seed is the same day in both
        # markets (what is still under way settles on the meters as they stand).
        self.stepper.pause()
        self._sample(self.hour())
        self._progress(self.hour())

    def _sample(self, hour: float) -> None:
        """Readings of every board (the bridge's latest) and the Ether moved so far."""
        rt = self.runtime
        row: dict[str, Any] = {"hour": hour, "boards": {}, "paid": {}, "received": {}}
        for p in self.people:
            reading = rt.market.safe_read(p["board"])
            if reading is not None:
                row["boards"][p["name"]] = {"power_w": reading.power_w, "pv_w": reading.pv_w,
                                           "soc": reading.soc, "wh_in": reading.wh_in,
                                           "wh_out": reading.wh_out}
        if self.plan.market == "intervals":
            for p in self.people:  # what its interval fills cost or earned so far
                side = "paid" if p["role"] == "consumer" else "received"
                row[side][p["address"]] = sum(  # a seller's paid_wei is its payout
                    int(f["paid_wei"] or 0)
                    for f in rt.market.intervals.fills_of(p["address"], 10_000))
        for deal in rt.store.deals():
            row["paid"][deal["buyer"]] = row["paid"].get(deal["buyer"], 0) + deal["paid_wei"]
            row["received"][deal["seller"]] = (row["received"].get(deal["seller"], 0)
                                               + deal["paid_wei"])
        self.samples.append(row)

    def _progress(self, hour: float) -> None:
        total = self.plan.warmup_hours + self.plan.hours
        if self.plan.market == "intervals":
            history = self.runtime.market.intervals.history(limit=10_000)
            prices = [int(h["price_wei"]) for h in history if h["price_wei"] is not None]
            self.say(f"[{int(hour % 24):02d}:{int(hour % 1 * 60):02d}] hour "
                     f"{hour - self.first_hour:4.1f}/{total:g}  intervals "
                     f"{len(history)} ({len(prices)} cleared)  traded "
                     f"{sum(h['volume_wh'] for h in history)} Wh  pending tx "
                     f"{len(self.runtime.txm.pending())}")
            return
        deals = self.runtime.store.deals()
        done = sum(d["status"] == "closed" for d in deals)
        wh = sum(d["delivered_wh"] for d in deals)
        pending = len(self.runtime.txm.pending())
        self.say(f"[{int(hour % 24):02d}:{int(hour % 1 * 60):02d}] hour "
                 f"{hour - self.first_hour:4.1f}/{total:g}  deals {len(deals)} "
                 f"({done} closed)  delivered {wh} Wh  pending tx {pending}")


def open_day(
    runtime: Runtime, plan: Plan, clock: SteppedClock, say: Callable[[str], None] = print,
    on_wait: Callable[[str, float], None] | None = None,
) -> TradingDay:
    """Unlock the participants, note balances, deposit the consumers' escrow; the day begins."""
    by_name = {a["name"]: a for a in runtime.demo_accounts}
    people = []
    for spec in plan.participants:
        address = by_name[spec["name"]]["address"]
        # Each agent signs with its own key, through the market's signed layer.
        key = LocalParty(runtime.market, runtime.wallets,
                         runtime.keystore.unlock(address, spec["passphrase"]))
        people.append({**spec, "address": address, "key": key})
    ledger = runtime.ledger
    eth_start = {p["address"]: ledger.eth_balance(p["address"]) for p in people}
    # Subscribed before the deposits, so their gas is in the books too.
    journal = ChainJournal(ledger, eth_start)
    journal.clock = clock  # each settle batch noted with the market time it was mined at
    runtime.txm.subscribe(journal.on_transaction)
    intervals = plan.market == "intervals"
    escrow_market = EscrowMarket.COMMUNITY if intervals else None
    deposits = [p["key"].deposit(DEPOSIT_WEI, escrow_market) for p in people
                if p["role"] == "consumer"]
    for record in deposits:
        ledger.wait(record)
    producers, consumers = _agents(plan, people)
    # Trading starts now, at start_hour: the stepped emulator stood still while the stack
    # came up.
    stepper = Stepper(runtime.microgrid, clock, plan.step_s, plan.speed, plan.interval_s)
    t0 = clock.now()
    if intervals:
        first_n = runtime.market.intervals.boundaries.index(t0)
        sync = BoundarySync(runtime, people, first_n, on_wait)
        stepper.before_boundary, stepper.after_boundary = sync.before, sync.after
        journal.measured_from_n = first_n + round(plan.warmup_hours * 3600 / plan.interval_s)
    return TradingDay(runtime, plan, clock, people, eth_start, journal, producers, consumers,
                      t0, plan.start_hour - plan.warmup_hours, stepper, say)


def _agents(plan: Plan, people: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """The day's producer and consumer agents for the plan's market."""
    if plan.market == "intervals":
        valid_s = int((plan.warmup_hours + plan.hours) * 3600) + 2 * 86_400  # and settlement
        return ([StandingAgent(p["name"], p["key"], "sell",
                               sell_fields(p["reserve_wei"], p["reserve_wh"], valid_s))
                 for p in people if p["role"] == "producer"],
                [StandingAgent(p["name"], p["key"], "buy",
                               buy_fields(p["limit_wei"], _peak(p), plan.interval_s, valid_s))
                 for p in people if p["role"] == "consumer"])
    return ([ProducerAgent(p["name"], p["key"], p["reserve_wei"], plan.lot_wh,
                           duration_s=plan.auction_s)
             for p in people if p["role"] == "producer"],
            [ConsumerAgent(p["name"], p["key"], p["limit_wei"], p["profile"], p["load_w"])
             for p in people if p["role"] == "consumer"])


def _peak(person: dict[str, Any]) -> float:
    return max([person["load_w"], *(w for _, w in person["profile"])])
