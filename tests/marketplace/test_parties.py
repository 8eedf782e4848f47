"""One party in several deals: a buyer's deals run one after another, a seller serves several.

Found by `gridbid simulate`'s reconciliation: a buyer in two deals at once was billed twice for
the same metered Wh, the end of one of a seller's deals cut off its other, and a new listing's
token approval could replace the allowance a sold listing's deal still needed.
"""

from __future__ import annotations

import pytest

from tests.common import wait_for
from tests.marketplace.common import ready

SLOW = {"LOAD_W": 30}  # 5 Wh a second at 600x: deals last seconds, long enough to watch


def _deal(market, listing_id):
    return next((d for d in market.deals() if d["listing_id"] == listing_id), None)


@pytest.mark.parametrize("app", [SLOW], indirect=True)
def test_a_buyers_second_deal_waits_for_the_first_and_meters_do_not_overlap(
    runtime, clock, caplog
):
    """A deal whose baseline was sent holds its buyer's meter while still opening: the other
    deal waits instead of sending a baseline the escrow refuses (MeterBusy) and burning one of
    its tries."""
    people = ready(runtime)
    market, store = runtime.market, runtime.store
    first = people["alice"].list(10, 1000, 30)
    second = people["alice"].list(15, 1000, 30)
    people["bob"].bid(first["id"], 2000)
    people["bob"].bid(second["id"], 2000)
    clock.advance(31)

    done = wait_for(lambda: all(
        (d := _deal(market, lid)) and d["status"] == "closed" for lid in (first["id"],
                                                                          second["id"])),
        timeout=30, what="both deals to deliver and close")
    assert done
    escrow = runtime.ledger.escrow
    started = {e["args"]["dealId"]: e
               for e in escrow.events.DeliveryStarted().get_logs(from_block=0)}
    # In the order their deliveries started on chain (whichever deal opened there first).
    rows = sorted((store.deal(_deal(market, lid)["id"]) for lid in (first["id"], second["id"])),
                  key=lambda r: started[r["chain_deal_id"]]["blockNumber"])
    assert sorted(r["delivered_wh"] for r in rows) == [10, 15]
    assert rows[1]["error"] is None
    # The second deal measured from where the first stopped: no Wh was billed twice.
    assert rows[1]["baseline_wh"] >= rows[0]["baseline_wh"] + rows[0]["delivered_wh"]
    assert not runtime.bridge.read("load-bob").relays[0]
    # Both were opened on chain at once; the second started delivering (its baseline) only
    # after the first had closed: the chain's own order, however fast the first delivered.
    assert escrow.functions.dealCount().call() == 2
    first_id, second_id = (r["chain_deal_id"] for r in rows)
    opened = {e["args"]["dealId"]: e for e in escrow.events.DealOpened().get_logs(from_block=0)}
    closed = {e["args"]["dealId"]: e for e in escrow.events.DealClosed().get_logs(from_block=0)}
    assert opened[second_id]["blockNumber"] < closed[first_id]["blockNumber"]
    assert closed[first_id]["blockNumber"] <= started[second_id]["blockNumber"]
    assert "MeterBusy" not in caplog.text


@pytest.mark.parametrize("app", [SLOW], indirect=True)
def test_a_seller_keeps_supplying_one_buyer_when_anothers_deal_ends(runtime, clock):
    people = ready(runtime, wh=90)
    market = runtime.market
    for_bob = people["alice"].list(40, 1000, 30)
    for_carol = people["alice"].list(40, 1000, 30)
    people["bob"].bid(for_bob["id"], 2000)
    people["carol"].bid(for_carol["id"], 2000)
    clock.advance(31)
    wait_for(lambda: all((d := _deal(market, lid)) and d["status"] == "active"
                         for lid in (for_bob["id"], for_carol["id"])), what="both deals")

    people["carol"].close(_deal(market, for_carol["id"])["id"])
    wait_for(lambda: _deal(market, for_carol["id"])["status"] == "closed", what="carol's close")
    assert not runtime.bridge.read("load-carol").relays[0]
    assert runtime.bridge.read("pv-alice").relays[0]  # bob's deal still needs alice's relay
    assert _deal(market, for_bob["id"])["status"] == "active"

    people["bob"].close(_deal(market, for_bob["id"])["id"])
    wait_for(lambda: _deal(market, for_bob["id"])["status"] == "closed", what="bob's close")
    assert not runtime.bridge.read("pv-alice").relays[0]


def test_tokens_of_a_sold_listing_stay_committed_until_its_deal_takes_them(runtime, clock):
    people = ready(runtime)
    market, wallets, ledger = runtime.market, runtime.wallets, runtime.ledger
    alice = people["alice"].address
    sold = people["alice"].list(10, 1000, 30)
    people["bob"].bid(sold["id"], 2000)
    wallets.set_mining(False)  # the deal's openDeal stays pending
    try:
        clock.advance(31)
        wait_for(lambda: _deal(market, sold["id"]), what="the auction to close")
        assert runtime.store.listed_wh(alice) == 10  # sold, but the escrow has not taken it
        tokens = ledger.token_balance(alice)
        assert market.unlisted_wh(alice) == tokens - 10
        people["alice"].list(12, 1000, 60)
        assert runtime.store.listed_wh(alice) == 22  # the new approval covers both
    finally:
        wallets.set_mining(True)
    wait_for(lambda: _deal(market, sold["id"])["status"] in ("active", "closed"),
             what="the sold listing's deal to open")
    wait_for(lambda: runtime.store.listed_wh(alice) == 12, what="its tokens taken by the escrow")
    assert ledger.token.functions.allowance(alice, ledger.escrow.address).call() >= 12
