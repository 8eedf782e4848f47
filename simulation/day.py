"""The trading day: participants unlocked and funded, agents acting in rounds, samples taken."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gridbid_client.local import LocalParty
from marketplace.clock import SteppedClock
from simulation.agents import ConsumerAgent, ProducerAgent
from simulation.journal import DAY, ChainJournal
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
        end = self.first_hour + plan.hours
        next_sample = next_report = self.hour()
        self.journal.phase = DAY  # setup's gas (deposits included) is reported apart
        # The agents act as often as they did on the wall clock: every agent period's steps.
        every = max(1, round(plan.agent_period_s * plan.speed / plan.step_s))
        steps = 0
        while (hour := self.hour()) < end - 1e-9:
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
        for deal in rt.store.deals():
            row["paid"][deal["buyer"]] = row["paid"].get(deal["buyer"], 0) + deal["paid_wei"]
            row["received"][deal["seller"]] = (row["received"].get(deal["seller"], 0)
                                               + deal["paid_wei"])
        self.samples.append(row)

    def _progress(self, hour: float) -> None:
        deals = self.runtime.store.deals()
        done = sum(d["status"] == "closed" for d in deals)
        wh = sum(d["delivered_wh"] for d in deals)
        pending = len(self.runtime.txm.pending())
        self.say(f"[{int(hour % 24):02d}:{int(hour % 1 * 60):02d}] hour "
                 f"{hour - self.first_hour:4.1f}/{self.plan.hours:g}  deals {len(deals)} "
                 f"({done} closed)  delivered {wh} Wh  pending tx {pending}")


def open_day(
    runtime: Runtime, plan: Plan, clock: SteppedClock, say: Callable[[str], None] = print
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
    runtime.txm.subscribe(journal.on_transaction)
    deposits = [p["key"].deposit(DEPOSIT_WEI) for p in people if p["role"] == "consumer"]
    for record in deposits:
        ledger.wait(record)
    producers = [ProducerAgent(p["name"], p["key"], p["reserve_wei"], plan.lot_wh,
                               duration_s=plan.auction_s)
                 for p in people if p["role"] == "producer"]
    consumers = [ConsumerAgent(p["name"], p["key"], p["limit_wei"], p["profile"], p["load_w"])
                 for p in people if p["role"] == "consumer"]
    # Trading starts now, at start_hour: the stepped emulator stood still while the stack
    # came up.
    stepper = Stepper(runtime.microgrid, clock, plan.step_s, plan.speed, plan.interval_s)
    t0 = clock.now()
    return TradingDay(runtime, plan, clock, people, eth_start, journal, producers, consumers,
                      t0, plan.start_hour, stepper, say)
