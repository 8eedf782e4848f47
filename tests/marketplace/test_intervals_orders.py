"""Standing orders and market modes: what is refused (with a sentence), what replaces what, and
a boundary opened once however many workers step it."""

from __future__ import annotations

import threading

import pytest

from contracts.bindings import sign_sell_order
from gridbid_client.local import LocalParty
from marketplace.errors import InvalidInput, NotAllowed
from marketplace.intervals import IntervalMarket
from marketplace.lease import SETTLEMENT, Lease
from marketplace.store import Store
from tests.common import wait_for
from tests.marketplace.common import (
    deposit,
    drained,
    keys,
    next_boundary,
    place,
    ready,
    sign_order,
)

SETTINGS = {"INTERVAL_TICK_S": 3600}  # the tests step the interval market themselves


@pytest.fixture
def people(runtime, clock):
    """alice, bob and carol switched to the interval market."""
    found = keys(runtime)
    for key in found.values():
        runtime.market.intervals.set_mode(key.address, "intervals")
    next_boundary(runtime, clock)
    return found


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_bad_orders_are_refused_with_a_sentence(runtime, people, clock):
    market = runtime.market.intervals
    alice, bob = people["alice"], people["bob"]
    with pytest.raises(NotAllowed, match="only producers can set a sell order"):
        market.order_terms(bob.address, "sell", {"floor_wei_per_kwh": 1})
    with pytest.raises(InvalidInput, match="'sell' or 'buy'"):
        market.order_terms(alice.address, "lend", {})
    with pytest.raises(InvalidInput, match="floor price"):
        market.order_terms(alice.address, "sell", {"floor_wei_per_kwh": "cheap"})
    with pytest.raises(InvalidInput, match="state of charge is 0 to 1"):
        market.order_terms(alice.address, "sell", {"floor_wei_per_kwh": 1, "reserve_soc": 2})
    made = sign_order(runtime, alice, "sell", floor_wei_per_kwh=1000)
    with pytest.raises(NotAllowed, match="not signed by your key"):
        market.set_order(alice.address, "sell", made["order"], sign_order(
            runtime, alice, "sell", floor_wei_per_kwh=999)["signature"])
    with pytest.raises(InvalidInput, match="lacks floorWeiPerKWh"):
        market.set_order(alice.address, "sell", {k: v for k, v in made["order"].items()
                                                 if k != "floorWeiPerKWh"}, made["signature"])
    domain = runtime.ledger.intervals.domain()

    def signed_as(**changes):
        order = {**{k: v if k in ("seller", "meter") else int(v)
                    for k, v in made["order"].items()}, **changes}
        return order, "0x" + sign_sell_order(alice, order, domain).hex()

    with pytest.raises(InvalidInput, match="must name your meter"):
        market.set_order(alice.address, "sell", *signed_as(meter=bob.address))
    with pytest.raises(InvalidInput, match="expires before the next interval ends"):
        market.set_order(alice.address, "sell", *signed_as(expiry=int(clock.now())))
    market.set_order(alice.address, "sell", made["order"], made["signature"])
    with pytest.raises(InvalidInput, match="already placed"):
        market.set_order(alice.address, "sell", made["order"], made["signature"])
    assert market.order_of(alice.address)["order"]["floorWeiPerKWh"] == "1000"


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_a_new_order_replaces_the_old_and_a_cancelled_one_ends(runtime, people):
    market = runtime.market.intervals
    bob = people["bob"].address
    first = place(runtime, people["bob"], "buy", cap_wei_per_kwh=10**14, expected_wh=10)
    second = place(runtime, people["bob"], "buy", cap_wei_per_kwh=2 * 10**14, expected_wh=5)
    assert market.istore.order(first["id"])["status"] == "replaced"
    assert market.order_of(bob)["id"] == second["id"]
    cancelled = market.cancel_order(bob)
    assert cancelled["status"] == "cancelled" and market.order_of(bob) is None
    # Nothing of it to settle: the page may also end it on chain with bob's own signature.
    party = LocalParty(runtime.market, runtime.wallets, people["bob"])
    runtime.ledger.wait(party.submit(cancelled["cancel_tx"]))
    assert runtime.ledger.intervals.cancelled(bytes.fromhex(cancelled["hash"][2:]))
    with pytest.raises(InvalidInput, match="no active standing order"):
        market.cancel_order(bob)


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_an_account_trades_in_one_market_and_switches_with_nothing_open(runtime, clock):
    market = runtime.market.intervals
    people = ready(runtime)
    alice, bob = people["alice"].address, people["bob"].address
    assert market.mode_of(alice) == "lots"
    with pytest.raises(NotAllowed, match="trades in the lot market"):
        place(runtime, keys(runtime)["bob"], "buy", cap_wei_per_kwh=1, expected_wh=1)
    listing = people["alice"].list(10, 1000, 30)
    market.set_mode(alice, "intervals")
    with pytest.raises(NotAllowed, match="switches to the interval market"):
        people["alice"].list(10, 1000, 30)
    next_boundary(runtime, clock)
    assert market.mode_of(alice) == "lots"  # its listing is still open
    clock.advance(30)
    wait_for(lambda: runtime.market.listing(listing["id"])["status"] == "unsold", what="unsold")
    next_boundary(runtime, clock)
    assert market.mode_view(alice)["mode"] == "intervals"
    with pytest.raises(NotAllowed, match="trades in the interval market"):
        runtime.market.offer_terms(alice, 10, 1000, 30)
    market.set_mode(bob, "intervals")
    next_boundary(runtime, clock)
    place(runtime, keys(runtime)["bob"], "buy", cap_wei_per_kwh=10**14, expected_wh=10)
    with pytest.raises(NotAllowed, match="cancel your standing order first"):
        market.set_mode(bob, "lots")
    with pytest.raises(NotAllowed, match="trades in the interval market"):  # no lot bids
        runtime.market.bid_terms(bob, listing["id"], 2000)
    market.cancel_order(bob)
    assert market.set_mode(bob, "lots")["requested"] == "lots"
    next_boundary(runtime, clock)  # nothing open, nothing to settle: back in the lot market
    assert market.mode_of(bob) == "lots"
    with pytest.raises(NotAllowed, match="trades in the lot market"):
        place(runtime, keys(runtime)["bob"], "buy", cap_wei_per_kwh=1, expected_wh=1)


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_two_workers_open_a_boundary_once(runtime, people, clock):
    market = runtime.market.intervals
    place(runtime, people["alice"], "sell", floor_wei_per_kwh=10**14)
    place(runtime, people["bob"], "buy", cap_wei_per_kwh=10**15, expected_wh=10)
    second_store = Store(runtime.store.path)
    second = IntervalMarket(second_store, runtime.ledger, runtime.market.switchboard, clock,
                            runtime.hub, market.settings, Lease(second_store, SETTLEMENT, 5.0))
    n = market.boundaries.index(clock.now()) + 1
    clock.advance(market.next_clearing_at() - clock.now() + 1e-3)
    results: list = []
    workers = [threading.Thread(target=lambda m=m: results.append(m.step()))
               for m in (market, second, market, second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    opened = [r for r in results if r is not None]
    assert [r["n"] for r in opened] == [n]
    assert len([f for f in market.istore.fills(n) if f["side"] == "buy"]) <= 1
    second_store.close()


def test_the_runtime_loop_opens_boundaries_by_itself(runtime, clock):
    seen = []
    runtime.hub.subscribe(lambda topic, payload: seen.append((topic, payload)))
    n = next_boundary(runtime, clock, step=False)
    assert runtime.market.intervals.interval_view(n)["n"] == n
    published = wait_for(lambda: [p for t, p in seen if t == "interval" and p["n"] == n],
                         what="the interval published")[0]
    assert published["next_at"] == runtime.market.intervals.boundaries.end(n)
    assert published["price_wei"] is None  # nobody trades in it


@pytest.mark.parametrize("app", [{**SETTINGS, "PRICING": "bid", "INTERVAL_WALL_S": 120}],
                         indirect=True)
def test_pay_as_bid_bills_each_buyer_its_cap(runtime, people, clock):
    market = runtime.market.intervals
    board = runtime.store.participant(people["alice"].address)["board_id"]
    wait_for(lambda: (runtime.market.switchboard.signed(board) or 0) and
             runtime.market.switchboard.signed(board).wh_in >= 50, what="alice's PV")
    caps = {"bob": 5 * 10**14, "carol": 3 * 10**14}
    for name, cap in caps.items():
        deposit(runtime, people[name], 10**17)
        place(runtime, people[name], "buy", cap_wei_per_kwh=cap, expected_wh=10)
    place(runtime, people["alice"], "sell", floor_wei_per_kwh=10**14)
    # Alice offers from her token's baseline on: the first boundary's mint sets it. She offers
    # what her meter signed since, which a loaded machine may leave short of both buyers' 20 Wh
    # for an interval or two: the first interval that fills both is the one to check.
    next_boundary(runtime, clock)
    drained(runtime)
    buyers = {people[name].address for name in caps}
    for _ in range(4):
        first = next_boundary(runtime, clock)
        drained(runtime)
        if buyers <= {f["address"] for f in market.istore.fills(first)}:
            break
    else:
        pytest.fail("alice's offer never covered both buyers in four intervals")
    next_boundary(runtime, clock)
    next_boundary(runtime, clock)  # an interval is accounted once the next one ended
    fills = {f["address"]: f for f in market.interval_view(first)["fills"]}
    assert market.interval_view(first)["pricing"] == "bid"
    for name, cap in caps.items():
        fill = fills[people[name].address]
        assert int(fill["price_wei"]) == cap
        assert int(fill["paid_wei"]) == cap * fill["billed_wh"] // 1000
    seller = fills[people["alice"].address]
    assert int(seller["paid_wei"]) == sum(int(fills[people[n].address]["paid_wei"])
                                          for n in caps)
