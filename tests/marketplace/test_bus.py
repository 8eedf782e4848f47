"""The bus check's arithmetic, and honest emulated buses (several producers and consumers,
deals starting and ending at different times, boards read out of step) that must never trip it."""

from __future__ import annotations

import math
import random

import pytest

from firmware_bridge.emulator import Microgrid
from firmware_bridge.emulator.microgrid import LINE_LOSS
from marketplace.bus import BusWindow, agree
from marketplace.settings import Settings

SETTINGS = Settings()


def test_the_settings_allow_more_than_the_emulator_s_line_loss():
    assert LINE_LOSS < SETTINGS.line_loss


@pytest.mark.parametrize(("sent", "got", "ok"), [
    (100.0, 98.0, True),  # the emulator's 2 % loss
    (100.0, 93.0, True),  # 5 % loss + 2 % accuracy, the lowest that passes …
    (100.0, 90.0, False),  # … 8 % off is not loss
    (100.0, 104.0, True),  # a buyer's meter reading high, within the floor
    (100.0, 105.0, False),  # buyers cannot receive more than was sent
    (30.0, 0.0, False),  # F1: a frozen buyer's meter
    (1.5, 0.0, True),  # too little flow to tell
])
def test_agreement(sent, got, ok):
    assert agree(sent, got, SETTINGS) is ok


def test_a_window_sums_each_side_from_each_board_s_first_sight():
    window = BusWindow(started=0.0)
    window.see("pv", "seller", 10.0)
    window.see("load", "buyer", 50.0)
    window.see("pv", "seller", 20.0)
    window.see("load", "buyer", 59.8)
    window.see("load-2", "buyer", 7.0)  # joined later: counted from here
    assert window.flows() == pytest.approx((10.0, 9.8))
    assert window.slack() == pytest.approx(10.0 + 9.8)  # the last step of each counter
    window.see("pv", "seller", 20.0)  # a report that did not move: nothing flows there now
    assert window.slack() == pytest.approx(9.8)
    window.restart(5.0, keep={"pv"})
    assert window.flows() == (0.0, 0.0) and set(window.meters) == {"pv"}


class Bus:
    """An emulated bus read the way the market reads it: each board's latest report, boards
    reporting at their own moments (out of step with each other and with the check)."""

    def __init__(self, producers: int, consumers: int, load_w: float, speed: float):
        self.grid = Microgrid(speed=speed, seed=7)
        self.producers = [f"pv-{i}" for i in range(producers)]
        self.consumers = [f"load-{i}" for i in range(consumers)]
        for board in self.producers:
            self.grid.add_producer(board, soc=0.9)
        for i, board in enumerate(self.consumers):
            self.grid.add_consumer(board, load_w=load_w * (1 + i / 2))
        self.reported: dict[str, tuple[float, float]] = {}
        self.fresh: set[str] = set()  # boards that reported in the last step
        self.rng = random.Random(3)

    def relay(self, board: str, on: bool) -> None:
        self.grid.board(board).relays[0] = on

    def step(self, seconds: float) -> None:
        """Run the physics; each board reports with probability ½ (its phase drifts)."""
        self.grid.advance(seconds * self.grid.speed, step_s=seconds * self.grid.speed / 4)
        self.fresh = set()
        for board in self.producers + self.consumers:
            if board not in self.reported or self.rng.random() < 0.5:
                reading = self.grid.reading(board)
                self.reported[board] = (reading.wh_in, reading.wh_out)
                self.fresh.add(board)

    def check(self, window: BusWindow, on_bus: dict[str, str]) -> tuple[float, float]:
        for board, side in on_bus.items():
            if board in window.meters and board not in self.fresh:
                continue  # the same report as at the last check
            wh_in, wh_out = self.reported[board]
            window.see(board, side, wh_out if side == "seller" else wh_in)
        return window.flows()


@pytest.mark.parametrize("speed", [1.0, 60.0, 600.0])
def test_honest_buses_with_overlapping_deals_never_disagree(speed):
    """2 producers and 2 consumers; deals (pv-0→load-0, pv-1→load-1, pv-0→load-1) start and
    end at different ticks; the check runs every 0.2 s on reports up to two ticks old."""
    bus = Bus(producers=2, consumers=2, load_w=240.0, speed=speed)
    deals = {1: ("pv-0", "load-0", 5, 60), 2: ("pv-1", "load-1", 20, 90), 3: ("pv-0", "load-1",
                                                                              40, 120)}
    window = BusWindow(started=0.0)
    judged = 0
    for tick in range(160):
        active = {d: (s, b) for d, (s, b, start, end) in deals.items() if start <= tick < end}
        on_bus = {}
        for seller, buyer in active.values():
            on_bus[seller], on_bus[buyer] = "seller", "buyer"
        for board in bus.producers + bus.consumers:
            bus.relay(board, board in on_bus)
        bus.step(0.2)
        # Boards of deals that just ended stay while their last report shows the relay closed.
        gone = {b: m.side for b, m in window.meters.items() if b not in on_bus}
        sent, got = bus.check(window, {**gone, **on_bus})
        if window.due(tick * 0.2, SETTINGS):
            assert agree(sent, got, SETTINGS, window.slack()), (tick, sent, got)
            judged += 1
            window.restart(tick * 0.2, keep=set(on_bus))
    assert judged >= (1 if speed == 1.0 else 5)


class SignedBus(Bus):
    """The bus as the market reads it now: each board's meter signs its counters floored to
    whole Wh, at most once a second, each board at its own phase within the second."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = 0.0
        self.phase = {b: self.rng.random() for b in self.producers + self.consumers}
        self.signed_at: dict[str, int] = {}

    def step(self, seconds: float) -> None:
        self.grid.advance(seconds * self.grid.speed, step_s=seconds * self.grid.speed / 4)
        self.now += seconds
        self.fresh = set()
        for board in self.producers + self.consumers:
            second = int(self.now + self.phase[board])  # this board's signing second
            if self.signed_at.get(board) != second:
                self.signed_at[board] = second
                reading = self.grid.reading(board)
                self.reported[board] = (math.floor(reading.wh_in), math.floor(reading.wh_out))
                self.fresh.add(board)


@pytest.mark.parametrize("speed", [1.0, 60.0, 600.0])
@pytest.mark.parametrize("load_w", [24.0, 240.0])
def test_honest_buses_judged_on_signed_counters_never_disagree(speed, load_w):
    """The bus check's evidence is the meters' signed counters (whole Wh, one a second per
    board, out of step): honest overlapping deals on 2 producers and 2 consumers never trip
    it at the emulator's speeds (the floor covers the counters' rounding)."""
    bus = SignedBus(producers=2, consumers=2, load_w=load_w, speed=speed)
    deals = {1: ("pv-0", "load-0", 5, 300), 2: ("pv-1", "load-1", 50, 500),
             3: ("pv-0", "load-1", 150, 600)}
    window = BusWindow(started=0.0)
    judged = 0
    for tick in range(700):
        active = {d: (s, b) for d, (s, b, start, end) in deals.items() if start <= tick < end}
        on_bus = {}
        for seller, buyer in active.values():
            on_bus[seller], on_bus[buyer] = "seller", "buyer"
        for board in bus.producers + bus.consumers:
            bus.relay(board, board in on_bus)
        bus.step(0.2)
        gone = {b: m.side for b, m in window.meters.items() if b not in on_bus}
        sent, got = bus.check(window, {**gone, **on_bus})
        if window.due(tick * 0.2, SETTINGS):
            assert agree(sent, got, SETTINGS, window.slack()), (tick, sent, got)
            judged += 1
            window.restart(tick * 0.2, keep=set(on_bus))
    assert judged >= 4


def test_a_frozen_signed_buyer_counter_still_shows_within_a_window():
    """F1 (review): judged on whole-Wh signed counters, a buyer whose signed WHIN is frozen
    while the seller's meter counts 1.7 Wh a second disagrees within a window's flow."""
    window = BusWindow(started=0.0)
    sellers_out, found = 100.0, None
    for second in range(30):
        window.see("pv", "seller", math.floor(sellers_out))
        window.see("load", "buyer", 42)
        if window.due(float(second), SETTINGS):
            sent, got = window.flows()
            found = None if agree(sent, got, SETTINGS, window.slack()) else sent
            break
        sellers_out += 1.7
    assert found is not None and found < 15


TWO_BY_TWO = {"PARTICIPANTS": [
    {"name": "alice", "role": "producer", "passphrase": "alice-demo", "board": "pv-alice"},
    {"name": "dave", "role": "producer", "passphrase": "dave-demo", "board": "pv-dave"},
    {"name": "bob", "role": "consumer", "passphrase": "bob-demo", "board": "load-bob"},
    {"name": "carol", "role": "consumer", "passphrase": "carol-demo", "board": "load-carol"},
]}


@pytest.mark.parametrize("app", [
    {**TWO_BY_TWO, "LOAD_W": 24},  # the tests' 600x: deals overlap for seconds
    TWO_BY_TWO,  # 240 W at 600x: 40 Wh a second, a report's step is ~20 Wh
], indirect=True, ids=["24W-600x", "240W-600x"])
# (The demo's 60x with 240 W also agrees, measured when the check was written; the unit
# harness above runs 1x, 60x and 600x on every run, the portal's 60x took 28 s more.)
def test_an_honest_portal_bus_with_two_producers_and_two_consumers_agrees(runtime, clock):
    """Overlapping deals on one emulated bus (alice→bob, dave→carol, then alice→carol while
    dave's still runs), read the way the market reads them: every deal completes, no trip."""
    from tests.common import wait_for
    from tests.marketplace.common import ETH, unlocked

    people = unlocked(runtime)
    for seller in ("alice", "dave"):
        wait_for(lambda s=seller: runtime.ledger.token_balance(people[s].address) >= 60,
                 what=f"{seller}'s tokens")
    for buyer in ("bob", "carol"):
        runtime.ledger.wait(people[buyer].deposit(ETH // 10))
    lots = [people["alice"].list(40, 1000, 30), people["dave"].list(30, 1000, 30),
            people["alice"].list(20, 1000, 30)]
    for lot, buyer in zip(lots, ("bob", "carol", "carol"), strict=True):
        people[buyer].bid(lot["id"], 1000)
    clock.advance(31)
    market = runtime.market
    done = wait_for(lambda: (d := market.deals()) and len(d) == 3
                    and all(x["status"] == "closed" for x in d) and d, timeout=90,
                    what="every deal to complete")
    assert {d["close_reason"] for d in done} == {"completed"}
    assert runtime.store.bus_disagreements() == []
