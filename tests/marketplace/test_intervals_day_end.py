"""The day's end settles each account's day in one position, on a started portal (embedded
chain, emulated boards at 600x, a hand-moved market clock).

An interval is accounted one boundary after it ends, so the day's last interval is accounted
at the next day's second boundary: settling at the first would send the day's last fills as
a second position of their own a boundary later (issue 15, gas per delivered kWh).
"""

from __future__ import annotations

import pytest

from tests.common import wait_for
from tests.marketplace.common import (
    PEOPLE,
    deposit,
    drained,
    keys,
    next_boundary,
    place,
)

ETH = 10**18
PRICE = 3 * 10**14  # wei per kWh: alice's floor and bob's cap
# Nothing settles by energy (SETTLE_WH far above what is traded): only the day's end.
SETTINGS = {"PARTICIPANTS": PEOPLE, "SETTLE_WH": 100_000, "INTERVAL_TICK_S": 3600,
            "INTERVAL_WALL_S": 120}


def settled(runtime) -> list[dict]:
    return [e["args"] for e in runtime.ledger.intervals.events(0)
            if e["event"] == "PositionSettled"]


def mined(runtime) -> bool:
    market = runtime.market.intervals
    return market.step() is None and not market.istore.batches(status="sent")


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_the_days_end_settles_its_last_interval_in_the_same_position(runtime, clock):
    market, people = runtime.market.intervals, keys(runtime)
    alice, bob = people["alice"].address, people["bob"].address
    deposit(runtime, people["bob"], ETH // 10)
    board = runtime.store.participant(alice)["board_id"]
    wait_for(lambda: (runtime.market.switchboard.signed(board) or 0) and
             runtime.market.switchboard.signed(board).wh_in >= 100, what="alice's PV")
    for address in (alice, bob):
        market.set_mode(address, "intervals")
    # To four intervals before the day's end (the day of the market clock's interval).
    boundaries = market.boundaries
    n = boundaries.index(clock.now())
    last = next(k for k in range(n, n + 200) if boundaries.day(k + 1) > boundaries.day(k))
    clock.advance(boundaries.start(last - 4) - clock.now() - 1)
    next_boundary(runtime, clock)
    place(runtime, people["alice"], "sell", floor_wei_per_kwh=PRICE, reserve_wh=100)
    place(runtime, people["bob"], "buy", cap_wei_per_kwh=PRICE, expected_wh=30)
    n = next_boundary(runtime, clock)
    while n < last:  # bob draws what he bought, so he bids it again: to the day's last
        drained(runtime)
        n = next_boundary(runtime, clock)
    assert any(f["address"] == bob for f in market.istore.fills(last)), "bob bought last"
    drained(runtime)
    first_of_day = next_boundary(runtime, clock)  # the next day: its last interval not
    wait_for(lambda: mined(runtime), what="no batch in flight")  # accounted yet
    assert settled(runtime) == []  # the day is not wholly accounted: nothing sent yet
    next_boundary(runtime, clock)  # the day's last interval accounted: the day settles
    wait_for(lambda: settled(runtime) and mined(runtime), what="the day's batch mined")
    day = boundaries.day(last)
    for address in (alice, bob):
        mine = [e for e in settled(runtime) if e["account"] == address]
        assert len(mine) == 1, f"one position for {address}'s day"
        fills = [f for f in market.istore.unsettled(address)
                 if boundaries.day(f["n"]) == day]
        assert fills == [], "every fill of the day settled"
        assert mine[0]["toInterval"] >= last
    assert first_of_day == last + 1
