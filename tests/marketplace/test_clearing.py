"""Interval clearing: fills stay inside every limit, Wh are conserved, welfare is optimal."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import (
    Bid,
    Offer,
    clear,
    crossing_range,
    matchable_wh,
    optimum_welfare,
    pro_rata,
    welfare,
)
from marketplace.errors import InvalidInput

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)
NAMES = [f"0x{i:040x}" for i in range(1, 7)]


@st.composite
def books(draw, most=4, max_wh=12, prices=(1, 9)):
    """A small book: up to `most` offers and bids, few distinct prices (so ties happen)."""
    price = st.integers(*prices).map(lambda p: p * 1000)
    wh = st.integers(0, max_wh)
    sellers = draw(st.lists(st.sampled_from(NAMES), max_size=most, unique=True))
    buyers = draw(st.lists(st.sampled_from(NAMES), max_size=most, unique=True))
    offers = [Offer(s, draw(wh), draw(price)) for s in sellers]
    bids = [Bid(b, draw(wh), draw(price)) for b in buyers]
    return offers, bids


def test_the_merit_order_fills_the_best_first_at_one_price():
    offers = [Offer("s1", 10, 1000), Offer("s2", 10, 5000), Offer("s3", 10, 9000)]
    bids = [Bid("b1", 15, 8000), Bid("b2", 10, 2000)]
    result = clear(offers, bids)
    assert result.sold == {"s1": 10, "s2": 5}
    assert result.bought == {"b1": 15}
    # Range: max(S(15)=5000, D(16)=2000) .. min(D(15)=8000, S(16)=5000): s2 is rationed at 5000.
    assert result.price == 5000
    assert {f.price for f in result.fills} == {5000}


def test_the_price_is_the_middle_of_the_crossing_range():
    offers = [Offer("s1", 10, 1000), Offer("s2", 10, 9000)]
    bids = [Bid("b1", 10, 10000), Bid("b2", 10, 6000)]
    # b1 buys all of s1; b2 (6000) is below s2 (9000): range [max(1000, 6000), min(10000, 9000)].
    assert crossing_range(offers, bids, 10) == (6000, 9000)
    assert clear(offers, bids).price == 7500


def test_nothing_trades_when_every_cap_is_below_every_floor():
    result = clear([Offer("s", 10, 5000)], [Bid("b", 10, 4999)])
    assert result.price is None and result.fills == [] and result.volume_wh == 0


def test_cap_equal_to_floor_trades():
    result = clear([Offer("s", 10, 5000)], [Bid("b", 4, 5000)])
    assert result.bought == {"b": 4} and result.price == 5000


def test_a_tie_at_the_margin_is_shared_pro_rata_whatever_the_addresses():
    offers = [Offer("s", 10, 1000)]
    bids = [Bid("0xa", 10, 3000), Bid("0xb", 5, 3000), Bid("0xc", 15, 3000)]
    result = clear(offers, bids)
    # 10 Wh over 30 Wh of equal caps: exact shares 3.33, 1.67, 5 -> 3, 2, 5 (largest remainder).
    assert result.bought == {"0xa": 3, "0xb": 2, "0xc": 5}
    renamed = clear(offers, [Bid("0xz", 10, 3000), Bid("0xb", 5, 3000), Bid("0xc", 15, 3000)])
    assert renamed.bought["0xz"] == 3


def test_pay_as_bid_charges_each_buyer_its_cap_and_pays_that_to_the_seller():
    offers = [Offer("s1", 10, 1000), Offer("s2", 10, 4000)]
    bids = [Bid("b1", 10, 9000), Bid("b2", 10, 5000)]
    result = clear(offers, bids, rule="bid")
    assert {(f.seller, f.buyer, f.wh, f.price) for f in result.fills} == {
        ("s1", "b1", 10, 9000), ("s2", "b2", 10, 5000)}
    assert result.price == 7000  # the Wh-weighted mean, for history


@pytest.mark.parametrize(
    ("offers", "bids", "rule", "words"),
    [
        ([Offer("s", -1, 1)], [], "clear", "wh must be a whole number"),
        ([], [Bid("b", 1, 1.5)], "clear", "cap must be a whole number"),
        ([Offer("s", 1, 1), Offer("s", 2, 1)], [], "clear", "appears twice"),
        ([], [], "auction", "pricing rule"),
    ],
)
def test_a_bad_book_is_refused_with_a_sentence(offers, bids, rule, words):
    with pytest.raises(InvalidInput, match=words):
        clear(offers, bids, rule)


@PROPERTY
@given(books(), st.sampled_from(["clear", "bid"]))
def test_no_fill_outside_an_order_and_wh_are_conserved(book, rule):
    offers, bids = book
    result = clear(offers, bids, rule)
    floors = {o.seller: o for o in offers}
    caps = {b.buyer: b for b in bids}
    for fill in result.fills:
        assert fill.wh > 0
        assert floors[fill.seller].floor <= fill.price <= caps[fill.buyer].cap
        if rule == "bid":
            assert fill.price == caps[fill.buyer].cap
    for seller, wh in result.sold.items():
        assert 0 < wh <= floors[seller].wh
        assert wh == sum(f.wh for f in result.fills if f.seller == seller)
    for buyer, wh in result.bought.items():
        assert 0 < wh <= caps[buyer].wh
        assert wh == sum(f.wh for f in result.fills if f.buyer == buyer)
    assert sum(result.sold.values()) == sum(result.bought.values())
    if rule == "clear" and result.fills:
        assert {f.price for f in result.fills} == {result.price}


@PROPERTY
@given(books(), st.sampled_from(["clear", "bid"]))
def test_welfare_is_the_brute_force_optimum(book, rule):
    offers, bids = book
    assert welfare(clear(offers, bids, rule), offers, bids) == optimum_welfare(offers, bids)


@PROPERTY
@given(books())
def test_no_order_left_unfilled_would_trade_at_the_clearing_price(book):
    offers, bids = book
    result = clear(offers, bids)
    if result.price is None:
        # Nothing trades: the best bid is below the best offer (or a side is empty).
        live_bids, live_offers = [b for b in bids if b.wh], [o for o in offers if o.wh]
        assert not (live_bids and live_offers) or (
            max(b.cap for b in live_bids) < min(o.floor for o in live_offers))
        return
    short_buyers = [b for b in bids if result.bought.get(b.buyer, 0) < b.wh]
    short_sellers = [o for o in offers if result.sold.get(o.seller, 0) < o.wh]
    # A buyer left short would not pay more than the price, a seller left short not take less.
    assert all(b.cap <= result.price for b in short_buyers)
    assert all(o.floor >= result.price for o in short_sellers)


@PROPERTY
@given(books(most=5, max_wh=20, prices=(1, 3)))
def test_equal_orders_at_the_margin_get_shares_within_one_wh_of_pro_rata(book):
    offers, bids = book
    result = clear(offers, bids)
    for orders, filled, price in ((bids, result.bought, "cap"), (offers, result.sold, "floor")):
        levels = {getattr(o, price) for o in orders if o.wh}
        for level in levels:
            group = [o for o in orders if getattr(o, price) == level and o.wh]
            got = sum(filled.get(o.buyer if price == "cap" else o.seller, 0) for o in group)
            total = sum(o.wh for o in group)
            for order in group:
                owner = order.buyer if price == "cap" else order.seller
                exact = got * order.wh / total
                assert abs(filled.get(owner, 0) - exact) < 1


@PROPERTY
@given(books(), st.sampled_from(["clear", "bid"]))
def test_clearing_is_deterministic_whatever_the_order_of_the_book(book, rule):
    offers, bids = book
    assert clear(offers, bids, rule) == clear(offers[::-1], bids[::-1], rule)


@PROPERTY
@given(st.integers(0, 1000), st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_pro_rata_sums_exactly_and_stays_within_one_of_the_exact_share(amount, weights):
    named = [(f"0x{i}", w) for i, w in enumerate(weights)]
    shares = pro_rata(amount, named)
    assert sum(shares.values()) == amount
    for owner, weight in named:
        assert abs(shares[owner] - amount * weight / sum(weights)) < 1


def test_matchable_wh_sends_more_than_is_received_and_prices_the_loss_in():
    offers = [Offer("s", 100, 1000)]
    assert matchable_wh([Bid("b", 50, 2000)], offers, 0.1) == {"b": 50, "s": 56}
    # 1050 wei/kWh received is below 1000 / 0.9 = 1111 per received Wh: no trade pays.
    assert matchable_wh([Bid("b", 50, 1050)], offers, 0.1) == {}
    # Supply bound: 100 Wh sent reach the buyers as 90.
    assert matchable_wh([Bid("b", 500, 2000)], offers, 0.1) == {"b": 90, "s": 100}


@pytest.mark.parametrize("loss", [-0.1, 1, 1.5])
def test_matchable_wh_refuses_a_loss_outside_0_to_1(loss):
    with pytest.raises(InvalidInput, match="line loss"):
        matchable_wh([], [], loss)


@PROPERTY
@given(books())
def test_without_loss_matchable_wh_is_the_clearing(book):
    offers, bids = book
    sellers = {o.seller for o in offers}
    bids = [b for b in bids if b.buyer not in sellers]
    result = clear(offers, bids)
    assert matchable_wh(bids, offers, 0) == {**result.bought, **result.sold}


@PROPERTY
@given(books(max_wh=20), st.sampled_from([0.01, 0.05, 0.2]))
def test_matchable_wh_with_loss_is_within_limits_and_welfare_maximal(book, loss):
    offers, bids = book
    sellers = {o.seller for o in offers}
    bids = [b for b in bids if b.buyer not in sellers]
    got = matchable_wh(bids, offers, loss)
    keep = 1 - Fraction(str(loss))
    received = {b.buyer: got.get(b.buyer, 0) for b in bids}
    sent = {o.seller: got.get(o.seller, 0) for o in offers}
    assert all(received[b.buyer] <= b.wh for b in bids)
    assert all(sent[o.seller] <= o.wh for o in offers)
    assert sum(received.values()) <= sum(sent.values()) * keep
    # Brute force in received Wh: an offer is wh × keep received Wh at floor / keep each.
    # Sent Wh are rounded up from received / keep, which costs each seller under one Wh.
    seen = [Offer(o.seller, int(o.wh * keep), o.floor / keep) for o in offers]
    best = optimum_welfare(seen, bids)
    achieved = (sum(b.cap * received[b.buyer] for b in bids)
                - sum(o.floor * sent[o.seller] for o in offers))
    assert best - sum(o.floor for o in offers if sent[o.seller]) <= achieved <= best
