"""Interval accounts: buyers pay for what they metered, sellers share exactly what buyers paid."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import Bid, Fill, Offer, clear
from marketplace.errors import InvalidInput
from marketplace.interval_accounts import account

PROPERTY = settings(derandomize=True, max_examples=150, deadline=None)
NAMES = [f"0x{i:040x}" for i in range(1, 6)]


def test_buyers_pay_for_what_they_metered_up_to_what_they_bought():
    fills = [Fill("s", "b1", 10, 2000), Fill("s", "b2", 10, 2000)]
    result = account(fills, {"b1": 7, "b2": 30}, {"s": 20})
    assert result.billed_wh == {"b1": 7, "b2": 10}
    assert result.paid_wei == {"b1": 14, "b2": 20}
    assert result.burned_wh == {"s": 20}
    assert result.payout_wei == {"s": 34}  # all the payments, nothing more
    assert result.line_loss_wh == 3 and result.dust_wei == 0


def test_sellers_bear_the_line_loss_pro_rata_to_what_their_meters_sent():
    fills = [Fill("s1", "b", 10, 3000), Fill("s2", "b", 10, 3000)]
    # 20 Wh bought, the buyer's meter counted 18; s1 sent its 10, s2 only 5 (and 40 beyond).
    result = account(fills, {"b": 18}, {"s1": 10, "s2": 5})
    assert result.paid_wei == {"b": 54}
    assert result.burned_wh == {"s1": 10, "s2": 5}
    assert result.payout_wei == {"s1": 36, "s2": 18}
    assert result.line_loss_wh == -3  # the buyer counted more than the sellers sent


def test_pay_as_bid_weighs_a_seller_by_the_value_of_its_fills():
    fills = [Fill("s1", "b1", 10, 9000), Fill("s2", "b2", 10, 3000)]
    result = account(fills, {"b1": 10, "b2": 10}, {"s1": 10, "s2": 10}, rule="bid")
    assert result.paid_wei == {"b1": 90, "b2": 30}
    assert result.payout_wei == {"s1": 90, "s2": 30}


def test_a_seller_whose_meter_counted_nothing_still_splits_what_buyers_paid():
    # One Wh each way: the seller's counter had not yet ticked over while the buyer's had.
    result = account([Fill("s", "b", 1, 5000)], {"b": 1}, {})
    assert result.paid_wei == {"b": 5} and result.burned_wh == {"s": 0}
    assert result.payout_wei == {"s": 5} and result.dust_wei == 0


@pytest.mark.parametrize(
    ("fills", "metered_in", "rule", "words"),
    [
        ([Fill("s", "b", 1, 1), Fill("t", "b", 1, 2)], {}, "bid", "two prices"),
        ([Fill("s", "b", 1, 1), Fill("s", "c", 1, 2)], {}, "clear", "one clearing price"),
        ([Fill("s", "b", 1, 1)], {"b": -1}, "clear", "whole number"),
        ([Fill("s", "b", 0, 1)], {}, "clear", "no Wh"),
    ],
)
def test_inconsistent_input_is_refused(fills, metered_in, rule, words):
    with pytest.raises(InvalidInput, match=words):
        account(fills, metered_in, {}, rule)


@st.composite
def intervals(draw):
    """A cleared book and what each meter counted (short, exact or over what was traded)."""
    price = st.integers(1, 20).map(lambda p: p * 137)  # odd prices: costs round
    sellers = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    buyers = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    offers = [Offer(s, draw(st.integers(1, 30)), draw(price)) for s in sellers]
    bids = [Bid(b, draw(st.integers(1, 30)), draw(price)) for b in buyers]
    rule = draw(st.sampled_from(["clear", "bid"]))
    result = clear(offers, bids, rule)
    metered_in = {b: draw(st.integers(0, 40)) for b in result.bought}
    metered_out = {s: draw(st.integers(0, 40)) for s in result.sold}
    return result, metered_in, metered_out, rule


@PROPERTY
@given(intervals())
def test_the_accounts_identities_hold(interval):
    result, metered_in, metered_out, rule = interval
    books = account(result.fills, metered_in, metered_out, rule)
    prices = {f.buyer: f.price for f in result.fills}
    for buyer, wh in result.bought.items():
        assert books.billed_wh[buyer] == min(wh, metered_in[buyer])
        assert books.paid_wei[buyer] == prices[buyer] * books.billed_wh[buyer] // 1000
    for seller, wh in result.sold.items():
        assert books.burned_wh[seller] == min(wh, metered_out[seller])
        assert books.payout_wei[seller] >= 0
    paid = sum(books.paid_wei.values())
    assert sum(books.payout_wei.values()) + books.dust_wei == paid
    assert 0 <= books.dust_wei < max(1, len(result.sold))
    assert books.line_loss_wh == sum(books.burned_wh.values()) - sum(books.billed_wh.values())


@PROPERTY
@given(intervals())
def test_payouts_are_pro_rata_to_the_value_each_seller_delivered(interval):
    result, metered_in, metered_out, rule = interval
    books = account(result.fills, metered_in, metered_out, rule)
    value = {s: sum(f.price * f.wh for f in result.fills if f.seller == s) for s in result.sold}
    weight = {s: value[s] * books.burned_wh[s] / result.sold[s] for s in result.sold}
    if not any(weight.values()):
        weight = value
    paid = sum(books.paid_wei.values())
    for seller in result.sold:
        exact = paid * weight[seller] / sum(weight.values())
        assert abs(books.payout_wei[seller] - exact) < 1 + 1e-9
    delivered = all(metered_out[s] >= wh for s, wh in result.sold.items())
    if rule == "clear" and result.fills and delivered:
        # Everyone delivered in full: equal weight per Wh sold, so equal wei per Wh within 1.
        per_wh = paid / result.volume_wh
        for seller, wh in result.sold.items():
            assert abs(books.payout_wei[seller] - per_wh * wh) < 1 + 1e-9


# -- the settlement's floor check with the line loss bound (issue 15, fault 1) ----------------

def contract_refuses(wei: int, floor: int, wh: int, bps: int) -> bool:
    """IntervalSettlement._belowFloor, as the contract computes it."""
    return wei < floor * wh * (10_000 - bps) // 10_000_000


def test_a_seller_at_its_floor_keeps_its_burn_within_the_loss_bound():
    # Cleared at the floor 3e14; the bus lost 2 % (98 of 100 Wh billed): under the 5 % bound.
    fills = [Fill("s", "b", 100, 3 * 10**14)]
    result = account(fills, {"b": 98}, {"s": 100}, floors={"s": 3 * 10**14}, max_loss_bps=500)
    assert result.burned_wh == {"s": 100}
    assert not contract_refuses(result.payout_wei["s"], 3 * 10**14, 100, 500)
    assert contract_refuses(result.payout_wei["s"], 3 * 10**14, 100, 0)  # as it was


def test_a_loss_past_the_bound_burns_fewer_wh_rather_than_a_refused_sell():
    # The bus lost 20 %: the seller burns what its payout covers at floor × 95 %.
    fills = [Fill("s", "b", 100, 3 * 10**14)]
    result = account(fills, {"b": 80}, {"s": 100}, floors={"s": 3 * 10**14}, max_loss_bps=500)
    burned = result.burned_wh["s"]
    assert burned == 84  # 80 × 3e14 / 1000 = 2.4e13 wei cover 84.2 Wh at 2.85e14
    assert not contract_refuses(result.payout_wei["s"], 3 * 10**14, burned, 500)
    assert contract_refuses(result.payout_wei["s"], 3 * 10**14, burned + 1, 500)
    assert result.line_loss_wh == burned - 80


@given(st.integers(0, 10**18), st.integers(1, 10**16), st.integers(0, 9_999))
@PROPERTY
def test_max_burn_is_the_contract_s_bound(wei, floor, bps):
    from marketplace.interval_accounts import max_burn_wh

    exact = max_burn_wh(wei, floor, bps, exact=True)
    assert not contract_refuses(wei, floor, exact, bps)
    assert contract_refuses(wei, floor, exact + 1, bps)
    safe = max_burn_wh(wei, floor, bps)  # fills capped so add up within the bound too
    assert safe <= exact and floor * safe * (10_000 - bps) <= wei * 10_000_000
