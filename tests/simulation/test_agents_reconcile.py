"""Agents' decisions and the day's reconciliation as pure functions (no chain, no boards)."""

from __future__ import annotations

from simulation.agents import choose_bid, lot_to_list
from simulation.reconcile import DayRecord, reconcile

ME, OTHER, SELLER = "0xMe", "0xOther", "0xSeller"


def listing(lid, min_next, highest=None, seller=SELLER, wh=100, deadline=100.0):
    return {"id": lid, "status": "open", "seller": seller, "highest_bidder": highest,
            "min_next_bid_wei": str(min_next), "energy_wh": wh, "deadline": deadline}


def test_a_consumer_bids_the_cheapest_listing_within_its_limit_and_escrow():
    offers = [listing(1, 30_000), listing(2, 20_000), listing(3, 10_000, seller=ME)]
    assert choose_bid(ME, offers, limit_wei=25_000, free_wei=10**9) == (2, 20_000)
    assert choose_bid(ME, offers, limit_wei=15_000, free_wei=10**9) is None  # above its limit
    assert choose_bid(ME, offers, limit_wei=25_000, free_wei=1_999) is None  # 2000 wei needed
    # Leading one auction is enough: it does not bid elsewhere meanwhile.
    assert choose_bid(ME, [listing(1, 11_000, highest=ME), listing(2, 9_000)], 25_000,
                      10**9) is None


def test_a_producer_lists_a_lot_only_when_free_and_covered():
    assert lot_to_list(500, busy=False, lot_wh=120, min_lot_wh=30) == 120
    assert lot_to_list(50, busy=False, lot_wh=120, min_lot_wh=30) == 50
    assert lot_to_list(20, busy=False, lot_wh=120, min_lot_wh=30) == 0
    assert lot_to_list(500, busy=True, lot_wh=120, min_lot_wh=30) == 0


def day(**changes) -> DayRecord:
    """One producer sold 40 Wh at 12345 wei/kWh to one consumer; everything agrees."""
    paid = 12345 * 40 // 1000
    record = dict(
        participants=[{"name": "p", "address": SELLER, "role": "producer", "board": "pv"},
                      {"name": "c", "address": ME, "role": "consumer", "board": "load"}],
        meters={"pv": (100.4, 40.9), "load": (40.082, 0.0)},
        line_loss_wh=40.9 * 0.02,
        minted={SELLER: 100}, meter_readings={SELLER: 100}, baselines={}, burned_wh=40,
        token_balances={SELLER: 60, ME: 0}, escrow_tokens=0, total_supply=60,
        chain_deals=[{"id": 1, "listing_id": 1, "buyer": ME, "seller": SELLER, "price": 12345,
                      "energy_wh": 40, "delivered_wh": 40, "paid_wei": paid,
                      "refunded_wei": 0, "closed": True, "close_reason": 1,
                      "steps": [(20, 246), (20, paid - 246)]}],
        store_listings=[{"seller": SELLER, "energy_wh": 40, "status": "sold"}],
        store_deals=[{"chain_deal_id": 1, "buyer": ME, "seller": SELLER, "baseline_wh": 0.0,
                      "delivered_wh": 40, "paid_wei": paid, "opened": 0.0}],
        deposits={ME: 10**6}, withdrawals={}, escrow_free={ME: 10**6 - paid, SELLER: 0},
        escrow_locked={ME: 0, SELLER: 0}, owed={}, escrow_eth=10**6 - paid,
        eth_start={SELLER: 10**18, ME: 10**18},
        eth_end={SELLER: 10**18 + paid - 7, ME: 10**18 - 10**6 - 9},
        gas_paid={SELLER: 7, ME: 9},
    )
    record.update(changes)
    return DayRecord(**record)


def test_a_day_whose_sources_agree_reconciles():
    books = reconcile(day())
    assert books.ok, [c.what for c in books.failures()]
    assert books.total["delivered_wh"] == 40 and books.total["received_wei"] == 493
    assert abs(books.bus["residual_wh"]) < 1e-9


def test_each_source_that_disagrees_is_caught():
    # A meter that counted a Wh more than was minted.
    assert not reconcile(day(meters={"pv": (101.2, 40.9), "load": (40.082, 0.0)})).ok
    # A buyer billed for energy its meter never counted (two deals counting one meter).
    failed = reconcile(day(meters={"pv": (100.4, 40.9), "load": (20.5, 0.0)},
                           line_loss_wh=40.9 - 20.5)).failures()
    assert any("billed vs buyer meter" in c.what for c in failed)
    # A seller whose balance moved by a wei the escrow's events do not explain.
    failed = reconcile(day(eth_end={SELLER: 10**18 + 493 - 6, ME: 10**18 - 10**6 - 9}))
    assert [c.what for c in failed.failures()] == [
        "p: Ether balance change + gas (state, receipts) vs payments received (events)"]
