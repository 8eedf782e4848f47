"""The interval market on a started portal: embedded chain, emulated boards, a hand-moved clock.

Two producers and three consumers keep standing orders; every boundary the loop accounts the
ended interval, clears the next and switches relays; due positions settle on chain in batches.
"""

from __future__ import annotations

import pytest

from tests.common import wait_for
from tests.marketplace.common import (
    CAPS,
    COMMUNITY,
    FLOORS,
    PEOPLE,
    community,
    drained,
    next_boundary,
    relay_on,
    settle,
)

# The tests step the interval market themselves (the loop's first pass is an hour away).
# The settlement bounds readings' ages by block time: a hand-moved interval takes seconds.
SETTINGS = {"PARTICIPANTS": PEOPLE, "SETTLE_WH": 40, "INTERVAL_TICK_S": 3600,
            "INTERVAL_WALL_S": 120}


@pytest.fixture
def people(runtime, clock):
    """Everyone switched to the interval market, consumers with 0.1 ETH there, orders set."""
    return community(runtime, clock)


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_standing_orders_trade_switch_relays_and_settle_in_batches(runtime, people, clock):
    market, ledger = runtime.market.intervals, runtime.ledger
    start = ledger.block_number()
    tokens_before = {n: ledger.token.functions.balanceOf(people[n].address).call(
        block_identifier=start) for n in FLOORS}
    free_before = {n: ledger.escrow_free(people[n].address, COMMUNITY) for n in CAPS}
    first = next_boundary(runtime, clock)
    view = market.interval_view(first)
    assert {b["buyer"] for b in view["bids"]} == {people[n].address for n in CAPS}
    assert view["price_wei"] is not None and view["fills"], (view["offers"], view["bids"])
    for fill in view["fills"]:  # relays as the fills say, in the boards' next readings
        wait_for(lambda fill=fill: relay_on(runtime, fill["address"]), timeout=30,
                 what=f"{fill['address']}'s relay to close")
    for _ in range(4):
        drained(runtime)
        last = next_boundary(runtime, clock)
    # An interval is accounted once the next one ended (its spill is known): first..last-2.
    fills = [f for n in range(first, last - 1) for f in market.interval_view(n)["fills"]]
    assert {market.interval_view(n)["status"] for n in range(first, last - 1)} == {"accounted"}
    assert market.interval_view(last - 1)["status"] == "open"
    bought = [f for f in fills if f["side"] == "buy"]
    assert bought and all(f["billed_wh"] <= f["wh"] for f in bought)
    # The boards' budgets stop each buyer's meter at what it bought: within a Wh of the
    # signed counters' resolution and one physics step of the emulator (600x here).
    assert all(f["metered_wh"] <= f["wh"] + 2 for f in bought)
    assert sum(f["billed_wh"] for f in bought) > 0
    batch = settle(runtime)[0]
    events = [e["args"] for e in ledger.intervals.events(0) if e["event"] == "PositionSettled"]
    sent = [(p["account"], p["side"], p["wh"], int(p["wei"])) for b in market.batches()
            if b["status"] == "mined" for p in b["batch"]["positions"]]
    assert sorted(sent) == sorted((e["account"], e["side_name"], e["wh"], e["amountWei"])
                                  for e in events)  # every position sent was settled
    sigs = [p["order_sig"] for b in market.batches() for p in b["batch"]["positions"]]
    if len(market.batches()) > 1:  # an order verified once is not sent (nor checked) again
        assert "0x" in sigs
    paid = {n: sum(int(f["paid_wei"]) for f in market.fills_of(people[n].address) if f["settled"])
            for n in CAPS}
    for name in CAPS:  # buyers' community escrow charged what their settled fills cost
        assert ledger.escrow_free(people[name].address, COMMUNITY) == free_before[name] - paid[name]
    sold = [f for f in market.fills_of(people["alice"].address) + market.fills_of(
        people["dave"].address) if f["settled"]]
    assert sold, "a seller settled"
    for name in FLOORS:
        received = sum(int(f["paid_wei"]) for f in market.fills_of(people[name].address)
                       if f["settled"])
        assert ledger.owed_to(people[name].address) >= received
    # Each seller's tokens: what its readings minted less the Wh its settled sales burned.
    end = ledger.block_number()
    minted = ledger.token.events.EnergyMinted().get_logs(from_block=start + 1, to_block=end)
    for name in FLOORS:
        address = people[name].address
        burned = sum(e["wh"] for e in events if e["account"] == address)
        gained = sum(e["args"]["wh"] for e in minted if e["args"]["owner"] == address)
        balance = ledger.token.functions.balanceOf(address).call(block_identifier=end)
        assert balance - tokens_before[name] == gained - burned
    assert sum(e["wh"] for e in events if e["side_name"] == "sell") > 0
    assert batch["operator_sig"] and batch["operator_sig"].startswith("0x")
    # A producer without fills to settle mints in the batches (the lots' Minting skips it).
    mints = [r for b in market.batches() if b["status"] == "mined" for r in b["batch"]["mints"]]
    assert mints
    for reading in mints:  # taken (what it mints is capped by the meter's rated power)
        assert ledger.meter_of(reading["meter"])["last_reading_at"] >= reading["timestamp"]
    # Bob cancels: from the next interval on he neither trades nor draws.
    bob = people["bob"].address
    assert market.cancel_order(bob)["status"] == "cancelled"
    n = next_boundary(runtime, clock)
    assert bob not in {f["address"] for f in market.interval_view(n)["fills"]}
    wait_for(lambda: not relay_on(runtime, bob), timeout=10, what="bob's relay to open")
    assert market.order_of(bob) is None
    history = market.history(10)
    assert [h["n"] for h in history] == sorted(h["n"] for h in history)
    assert history[-1]["n"] == n and history[-1]["emulated_start"] == n * 900
