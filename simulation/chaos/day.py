"""A day with faults: the town started, agents trading over HTTP, parts killed in turn, and the
books reconciled from outside once everything settled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulation.chaos import FAULTS_EVERY_S, KINDS, MINUTES
from simulation.chaos.agents import Agent, AgentLog
from simulation.chaos.injector import Fault, Injector, Probe, schedule
from simulation.chaos.outside import Outside, read_meters, reconcile
from simulation.chaos.parts import ProcessPart
from simulation.chaos.stack import Layout, Stack
from simulation.reconcile import Check
from web.config import DEFAULTS

INTERVAL_S = DEFAULTS["INTERVAL_S"]  # the portal's interval, emulated seconds
ORDER_EVERY_INTERVALS = 3  # intervals between an agent's new standing orders (at least 2 s)


@dataclass
class ChaosPlan:
    """A chaos day: its length and pace, how often a part is killed, which kinds."""

    minutes: float = MINUTES  # emulated minutes of trading
    faults_every_s: float = FAULTS_EVERY_S  # emulated seconds between faults
    layout: Layout = field(default_factory=Layout)
    kinds: tuple[str, ...] = KINDS
    seed: int = 1
    settle_timeout_s: float = 90.0  # wall seconds the end waits for the last settlement
    out: Path = Path("var/simulation/chaos")

    def wall(self, emulated_s: float) -> float:
        """Wall seconds of emulated seconds at the day's speed."""
        return emulated_s / self.layout.speed


@dataclass
class ChaosResult:
    """What the day found."""

    faults: list[Fault]
    checks: list[Check]
    rows: list[dict[str, Any]]
    agents: AgentLog
    supervisor: list[dict[str, Any]]
    timing: dict[str, float]
    batches: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every check holds and every killed part answered again."""
        return all(c.ok for c in self.checks) and all(
            f.answered_after_s is not None for f in self.faults)


class ChaosDay:
    """Runs one chaos day and hands back its result."""

    def __init__(self, plan: ChaosPlan, progress: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.say = progress
        self.stack = Stack(plan.out, plan.layout)
        self.log = AgentLog()
        self.supervised: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._t0 = 0.0

    def run(self) -> ChaosResult:
        """Start, trade with faults, settle, reconcile; everything stopped at the end."""
        timing: dict[str, float] = {}
        begun = time.monotonic()
        try:
            self.stack.start()
            timing["start_s"] = round(time.monotonic() - begun, 1)
            self.say(f"chaos: {len(self.stack.parts)} parts up in {timing['start_s']} s")
            agents = self._agents()
            outside = Outside(self.stack.store_url, self.stack.chain.url, self.stack.data,
                              self.stack.urls())
            faults = self._trade(agents, outside, timing)
            for agent in agents:
                agent.finish()
            settled = time.monotonic()
            self._settle(outside)
            timing["settle_s"] = round(time.monotonic() - settled, 1)
            for bridge in self.stack.bridges:
                bridge.stop()  # the boards' lines are free to be read directly
            meters = read_meters(self.stack.boards.devices)
            checks, rows = reconcile(outside, self._people(), self.log.acks, meters)
            batches = outside.batches()
        finally:
            self._stop.set()
            self.stack.stop()
        timing["total_s"] = round(time.monotonic() - begun, 1)
        return ChaosResult(faults, checks, rows, self.log, self.supervised, timing, batches)

    def _people(self) -> list[dict[str, Any]]:
        return [{**p, "address": self.stack.key_address(p["name"])} for p in self.stack.people]

    def _agents(self) -> list[Agent]:
        agents = [Agent(p, self.stack.key(p["name"], p["passphrase"]), self.stack.urls,
                        self.log) for p in self.stack.people]
        for agent in agents:
            agent.setup()
            agent.place()
        return agents

    def _hour(self) -> float:
        """The emulated hour of the day now."""
        layout = self.plan.layout
        return layout.start_hour + (time.monotonic() - self._t0) * layout.speed / 3600

    def _trade(self, agents: list[Agent], outside: Outside, timing: dict[str, float]
               ) -> list[Fault]:
        """The trading hours: agents keep signing new orders while the faults come."""
        plan = self.plan
        probe = Probe(outside.cleared, outside.settled_count, lambda: bool(outside.unsettled()),
                      self._hour)
        # The market has 8 intervals to clear again after a part answers (and to settle).
        injector = Injector(self.stack.by_kind(), probe, plan.seed,
                            market_wait_s=plan.wall(8 * INTERVAL_S))
        count = max(1, int(plan.minutes * 60 // plan.faults_every_s))
        order = schedule([k for k in plan.kinds if k in injector.parts], count, plan.seed)
        self._t0 = time.monotonic()
        trader = threading.Thread(target=self._orders, args=(agents,), daemon=True)
        trader.start()
        end = self._t0 + plan.wall(plan.minutes * 60)
        for i, kind in enumerate(order):
            due = self._t0 + plan.wall((i + 1) * plan.faults_every_s)
            self._wait_supervising(due)
            fault = injector.inject(kind)
            self.say(f"chaos: {fault.kind} {fault.part} killed at {fault.emulated_at:.2f} h: "
                     f"answered after {fault.answered_after_s} s, cleared after "
                     f"{fault.cleared_after_s} s, settled after {fault.settled_after_s} s "
                     f"{fault.note}")
        self._wait_supervising(end)
        self._stop.set()
        trader.join(30)
        timing["trading_s"] = round(time.monotonic() - self._t0, 1)
        return injector.faults

    def _orders(self, agents: list[Agent]) -> None:
        """Each agent signs a new standing order every few intervals, faults or not."""
        every = max(2.0, self.plan.wall(ORDER_EVERY_INTERVALS * INTERVAL_S))
        while not self._stop.wait(every):
            for agent in agents:
                if self._stop.is_set():
                    return
                agent.place()

    def _wait_supervising(self, until: float) -> None:
        """Wait until a wall time, restarting any process part that died by itself (as its
        supervisor, systemd's Restart=always, would)."""
        while True:
            for part in self.stack.parts:
                if isinstance(part, ProcessPart) and part.process is not None \
                        and not part.alive():
                    code = part.process.returncode
                    self.supervised.append({"part": part.name, "exit": code,
                                            "hour": round(self._hour(), 3)})
                    self.say(f"chaos: {part.name} exited ({code}) by itself; restarted")
                    part.start()
            if time.monotonic() >= until:
                return
            time.sleep(min(0.5, max(0.0, until - time.monotonic())))

    def _settle(self, outside: Outside) -> None:
        """Wait until the books are final and settled: the market opened two intervals after
        the agents' cancels (so the last fills were written and accounted), no fill is left
        unaccounted or billed unsettled, and the chain holds every billed Wh."""
        deadline = time.monotonic() + self.plan.settle_timeout_s
        last = None
        while time.monotonic() < deadline:
            self._wait_supervising(time.monotonic() + 1.0)
            try:
                # A boundary claimed before the cancels may still write fills of their
                # orders (it read them active): the one after it claimed later cannot.
                last = outside.cleared() if last is None else last
                if final(outside, last) and _chain_has_all(outside):
                    return
            except Exception:  # noqa: BLE001 - a part may still be recovering
                continue
        self.say("chaos: settlement did not finish within the end's wait: "
                 f"{_left(outside, last)}")


def final(outside: Outside, cleared_at_cancels: int | None) -> bool:
    """Whether the store's books can no longer change: the market cleared two intervals past
    the newest one cleared when the agents' cancels were in (its fills, if any, are
    accounted one boundary after it ends), and every fill is accounted and, when billed,
    settled."""
    newest = outside.cleared()
    if newest is None or (cleared_at_cancels is not None and newest < cleared_at_cancels + 2):
        return False
    return not outside.unaccounted() and not outside.unsettled()


def _left(outside: Outside, cleared_at_cancels: int | None) -> str:
    """What kept the books from being final, for the report (what to look for in the logs)."""
    try:
        billed, settled = _billed_and_settled(outside)
        return (f"cleared through {outside.cleared()} (cancels in at {cleared_at_cancels}); "
                f"unaccounted (n, address, side) {outside.unaccounted()}; billed unsettled "
                f"(n, address, side, Wh) {outside.unsettled()}; {billed} Wh billed, "
                f"{settled} Wh settled on chain")
    except Exception as err:  # noqa: BLE001 - a part is still down
        return f"unreadable ({err})"


def _chain_has_all(outside: Outside) -> bool:
    """Whether the chain's settled Wh equal the store's billed Wh of settled fills."""
    billed, settled = _billed_and_settled(outside)
    return billed == settled


def _billed_and_settled(outside: Outside) -> tuple[int, int]:
    """Wh billed in the store's fills, and Wh the chain's PositionSettled events settled."""
    billed = outside.sql("SELECT COALESCE(sum(billed_wh), 0) FROM interval_fills")[0][0]
    return int(billed), int(sum(e["wh"] for e in outside.settled_events()))
