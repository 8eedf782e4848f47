"""Standing orders: fields refused with a sentence, each interval's offer and bid within limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import InvalidInput
from marketplace.rules import cost_wei
from marketplace.standing import (
    affordable_wh,
    check_buy_order,
    check_order,
    check_sell_order,
    interval_bid,
    interval_offer,
)

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)
ALICE, METER = "0x" + "a" * 40, "0x" + "b" * 40
NOW = 1_700_000_000


def sell(**overrides):
    order = dict(seller=ALICE, meter=METER, floorWeiPerKWh=2000, maxWhPerInterval=0,
                 reserveWh=100, expiry=NOW + 3600, nonce=1)
    order.update(overrides)
    return order


def buy(**overrides):
    order = dict(buyer=ALICE, meter=METER, capWeiPerKWh=5000, maxWhPerInterval=0,
                 expectedWh=40, dailyBudgetWei=0, expiry=NOW + 3600, nonce=1)
    order.update(overrides)
    return order


def test_good_orders_come_back_as_ints_with_checksummed_addresses():
    checked = check_sell_order(sell(floorWeiPerKWh="2000", nonce="7"), NOW)
    assert checked["floorWeiPerKWh"] == 2000 and checked["nonce"] == 7
    assert checked["seller"] == "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa"
    assert check_buy_order(buy(), NOW)["expectedWh"] == 40


@pytest.mark.parametrize(
    ("kind", "order", "words"),
    [
        ("sell", sell(floorWeiPerKWh=0), r"floor price .* between 1 and"),
        ("buy", buy(capWeiPerKWh=0), r"price cap .* between 1 and"),
        ("buy", buy(capWeiPerKWh="1e3"), r"price cap .* whole number"),
        ("sell", sell(reserveWh=-1), r"battery reserve .* between 0 and"),
        ("buy", buy(maxWhPerInterval=2**64), r"cap per interval .* between 0 and"),
        ("buy", buy(expectedWh=0), r"expected draw .* between 1 and"),
        ("buy", buy(dailyBudgetWei=True), r"daily budget .* whole number"),
        ("sell", sell(expiry=NOW), r"expiry 1700000000 is not in the future"),
        ("sell", sell(meter="0x123"), r"meter '0x123' is not an Ethereum address"),
        ("sell", {**sell(), "price": 1}, r"no field price"),
        ("buy", {k: v for k, v in buy().items() if k != "nonce"}, r"missing nonce"),
        ("lot", sell(), r"'sell' or 'buy'"),
    ],
)
def test_a_bad_field_is_refused_with_a_sentence_naming_it(kind, order, words):
    with pytest.raises(InvalidInput, match=words):
        check_order(kind, order, NOW)


def test_a_producer_offers_the_lesser_of_tokens_and_battery_above_reserve():
    assert interval_offer(sell(), uncommitted_wh=500, battery_wh=350.9) == 250
    assert interval_offer(sell(), uncommitted_wh=120, battery_wh=350.9) == 120
    assert interval_offer(sell(maxWhPerInterval=60), 500, 350.9) == 60
    assert interval_offer(sell(), 500, 80.0) == 0  # below reserve: nothing, never negative
    assert interval_offer(sell(), 500, 350.0, reserve=300) == 50  # reserve given as SoC


def test_a_consumer_bids_its_last_draw_only_where_it_was_served_the_whole_interval():
    assert interval_bid(buy(), 25, True, 0, 10**18) == 25
    # Unserved (or served part of the interval), its meter's 0 would starve it: expectedWh.
    assert interval_bid(buy(), 0, False, 0, 10**18) == 40
    assert interval_bid(buy(), 12, False, 0, 10**18) == 40
    assert interval_bid(buy(), None, True, 0, 10**18) == 40  # no last interval yet


def test_a_bid_stays_within_cap_budget_and_balance_at_its_price_cap():
    assert interval_bid(buy(maxWhPerInterval=30), 100, True, 0, 10**18) == 30
    # 5000 wei/kWh: 199 wei left of the day's budget buys 39 Wh (39 × 5 = 195 wei).
    assert interval_bid(buy(dailyBudgetWei=1000), 100, True, 801, 10**18) == 39
    assert interval_bid(buy(dailyBudgetWei=1000), 100, True, 1200, 10**18) == 0
    assert interval_bid(buy(), 100, True, 0, 100) == 20
    assert interval_bid(buy(), 100, True, 0, 0) == 0


@PROPERTY
@given(st.integers(0, 10**6), st.integers(1, 10**7))
def test_affordable_wh_is_the_most_wh_that_cost_no_more_than_the_wei(wei, price):
    wh = affordable_wh(wei, price)
    assert cost_wei(price, wh) <= wei < cost_wei(price, wh + 1)


@PROPERTY
@given(
    st.integers(0, 500), st.floats(0, 2000, allow_nan=False), st.integers(0, 300),
    st.integers(0, 200),
)
def test_an_offer_never_exceeds_tokens_battery_above_reserve_or_the_cap(tokens, battery,
                                                                         reserve, cap):
    wh = interval_offer(sell(reserveWh=reserve, maxWhPerInterval=cap), tokens, battery)
    assert 0 <= wh <= tokens and wh <= max(0, battery - reserve)
    assert cap == 0 or wh <= cap
    assert wh == max(0, min(tokens, int(battery) - reserve, cap or tokens))


@PROPERTY
@given(
    st.integers(0, 200), st.booleans(), st.integers(1, 10**5), st.integers(0, 100),
    st.integers(1, 200), st.integers(0, 10**4), st.integers(0, 10**4), st.integers(0, 10**4),
)
def test_a_bid_never_costs_more_than_the_budget_left_or_the_free_balance(
        last, served, cap_price, cap_wh, expected, budget, spent, free):
    order = buy(capWeiPerKWh=cap_price, maxWhPerInterval=cap_wh, expectedWh=expected,
                dailyBudgetWei=budget)
    wh = interval_bid(order, last, served, spent, free)
    assert 0 <= wh <= (last if served else expected)
    assert cap_wh == 0 or wh <= cap_wh
    assert cost_wei(cap_price, wh) <= free
    assert budget == 0 or cost_wei(cap_price, wh) <= max(0, budget - spent)
