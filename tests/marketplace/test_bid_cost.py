"""A bid's store work is constant in the number of bids: the same statements and rows read
for the first bids of an auction and for bids late in a busy one (statements counted by a
wrapper of the store's one statement path, for the bidding thread only: the runtime's loops
share the store meanwhile)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from marketplace import rules
from tests.marketplace.common import ready


@pytest.fixture
def people(runtime):
    return ready(runtime, wh=4)


@contextmanager
def counted(store):
    """{statements, rows} this thread ran / read on store inside the block."""
    me, seen = threading.get_ident(), {"statements": 0, "rows": 0}
    run, query = store._run, store.query

    def counting_run(sql, args, rerun=False):
        if threading.get_ident() == me:
            seen["statements"] += 1
        return run(sql, args, rerun)

    def counting_query(sql, *args):
        rows = query(sql, *args)
        if threading.get_ident() == me:
            seen["rows"] += len(rows)
        return rows

    store._run, store.query = counting_run, counting_query
    try:
        yield seen
    finally:
        del store._run, store.query


def test_a_late_bid_costs_what_an_early_one_did(runtime, people):
    market, store = runtime.market, runtime.store
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    lots = [alice.list(1, 1000, 3600)["id"] for _ in range(3)]
    prices = dict.fromkeys(lots, 1000)
    costs = []
    for i in range(60):
        lot = lots[i % 3]
        bidder = (bob, carol)[(i // 3) % 2]  # each leads some lots, is outbid on others
        terms = market.bid_terms(bidder.address, lot, prices[lot])
        signature = bidder._sign(terms)
        with counted(store) as seen:
            view = market.place_bid(bidder.address, lot, terms["message"], signature)
        assert view["highest_bid_wei"] == str(prices[lot]) and view["bid_count"] == i // 3 + 1
        costs.append(seen)
        prices[lot] = prices[lot] * 102 // 100 + 1
    # The same moment of a round, 17 rounds on (rows read: the lots its bidder leads).
    early, late = costs[6:9], costs[57:60]
    assert late == early, (early, late)
    assert [c["rows"] for c in early] != [0, 0, 0]
    for lot in lots:  # the kept highest bid is the rule's winner over every stored bid
        best = rules.winner([(b["id"], b["price"], b["bidder"]) for b in store.bids(lot)])
        view = market.listing(lot)
        assert (view["highest_bid_wei"], view["highest_bidder"]) == (str(best[1]), best[2])
