"""Auction rules as pure functions: each refusal names the rule and what would pass."""

from __future__ import annotations

import pytest

from marketplace import rules
from marketplace.errors import (
    AuctionClosed,
    BidTooLow,
    InsufficientEscrow,
    InsufficientTokens,
    InvalidInput,
    NotAllowed,
)

SELLER, BOB, CAROL = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


def bid(**overrides):
    args = dict(seller=SELLER, bidder=BOB, start_price=1000, highest=None, price=1000,
                energy_wh=100, deadline=100.0, now=50.0, status="open", free_wei=10**18,
                limits=rules.Limits(min_increment_wei=10))
    args.update(overrides)
    rules.check_bid(**args)


def test_a_fair_bid_passes():
    bid()
    bid(highest=1000, price=1010)


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"price": 999}, BidTooLow, r"start bid is 0\.000000000000001 ETH/kWh"),
        ({"highest": 1000, "price": 1009}, BidTooLow,
         r"at least 0\.00000000000000101 ETH/kWh \(0\.000000000000000101 ETH for these 100 Wh"),
        ({"bidder": SELLER}, NotAllowed, "own listing"),
        ({"now": 100.0}, AuctionClosed, "ended"),
        ({"status": "sold"}, AuctionClosed, "ended"),
        ({"free_wei": 99}, InsufficientEscrow,
         r"needs 0\.0000000000000001 ETH .*you have 0\.000000000000000099 ETH free"),
    ],
)
def test_each_rule_refuses_with_its_own_error(overrides, error, words):
    with pytest.raises(error, match=words):
        bid(**overrides)


def test_cost_rounds_down_like_the_escrow():
    assert rules.cost_wei(1000, 1) == 1
    assert rules.cost_wei(999, 1) == 0
    assert rules.cost_wei(10**16, 40) == 4 * 10**14


def test_highest_bid_wins_and_the_earliest_wins_a_tie():
    assert rules.winner([]) is None
    assert rules.winner([(1, 10, BOB), (2, 20, CAROL), (3, 20, BOB)]) == (2, 20, CAROL)


def test_listing_needs_unlisted_tokens():
    rules.check_listing(50, 50)
    with pytest.raises(InsufficientTokens, match="at most 49 Wh"):
        rules.check_listing(50, 49)


@pytest.mark.parametrize("value", ["", "abc", "1.5", None, True, "-3", "10000001"])
def test_bad_integers_are_refused_by_field_name(value):
    with pytest.raises(InvalidInput, match="energy"):
        rules.parse_int(value, "energy", 1, 10_000_000)


def test_ether_amounts_parse_exactly():
    assert rules.parse_ether("1", "amount") == 10**18
    assert rules.parse_ether("0.000000000000000001", "amount") == 1
    for bad in ("0", "-1", "1e400", "0.0000000000000000001", "lots", "NaN"):
        with pytest.raises(InvalidInput):
            rules.parse_ether(bad, "amount")


def test_addresses_need_a_right_checksum_when_mixed_case():
    good = "0x52908400098527886E0F7030069857D2E4169EE7"
    assert rules.parse_address(good.lower()) == good
    with pytest.raises(InvalidInput, match="wrong checksum"):
        rules.parse_address(good[:-1] + "e")
    with pytest.raises(InvalidInput, match="not an Ethereum address"):
        rules.parse_address("0x1234")


def test_the_increment_is_the_larger_of_absolute_and_percent():
    limits = rules.Limits(min_increment_wei=10, min_increment_pct=1.0)
    assert rules.min_next_bid(1000, None, limits) == 1000  # the start price, no bid yet
    assert rules.min_next_bid(1000, 500, limits) == 510  # 1 % of 500 is 5 < 10
    assert rules.min_next_bid(1000, 10_000, limits) == 10_100  # 1 % of 10 000 is 100 > 10
    assert rules.min_next_bid(1000, 10_001, limits) == 10_102  # percent rounds up
    words = r"at least 0\.0000000000000101 ETH/kWh .*at least 0\.00000000000000001 ETH/kWh or 1 %"
    with pytest.raises(BidTooLow, match=words):
        bid(highest=10_000, price=10_099, limits=limits)


def test_soft_close_moves_the_deadline_back_but_not_past_the_cap():
    limits = rules.Limits(soft_close_s=10, soft_close_cap_s=25)
    first = 100.0
    cap = first + limits.soft_close_cap_s
    assert rules.extended_deadline(first, cap, now=80.0, limits=limits) == first  # not late
    assert rules.extended_deadline(first, cap, now=95.0, limits=limits) == 110.0
    assert rules.extended_deadline(110.0, cap, now=105.0, limits=limits) == 120.0
    assert rules.extended_deadline(120.0, cap, now=119.0, limits=limits) == cap  # capped
    assert rules.extended_deadline(first, cap, 99.0, rules.Limits()) == first  # switched off


@pytest.mark.parametrize("bad", ["sNaN", "-sNaN", "NaN", "Infinity", "-inf", "1e999999999",
                                 "1e-999999999", "1_000", "١", "１", "0x10", "1e", "."])
def test_ether_amounts_that_are_no_plain_number_are_refused_clearly(bad):
    """F8: "sNaN", "-sNaN" and "1e999999999" raised decimal's own errors (a 500), and
    "1e-999999999" passed as 0 wei: a rounding Decimal context computed the wei."""
    with pytest.raises(InvalidInput, match="amount"):
        rules.parse_ether(bad, "amount")


def test_ether_amounts_are_exact_or_refused_never_rounded():
    """F8: 29 significant digits were rounded to the context's 28 instead of refused."""
    assert rules.parse_ether("12345678901.234567890123456789", "amount") == (
        12345678901234567890123456789)
    assert rules.parse_ether("1.000000000000000001", "amount") == 10**18 + 1
    for rounded in ("1.0000000000000000000000000001", "0.0000000000000000015"):
        with pytest.raises(InvalidInput, match="18 decimals"):
            rules.parse_ether(rounded, "amount")
    with pytest.raises(InvalidInput, match="more than 0"):
        rules.parse_ether("0e-50", "amount")
    assert rules.parse_ether("1.5e-3", "amount") == 15 * 10**14
    assert rules.parse_ether(" 2.50 ", "amount") == 25 * 10**17
    assert rules.parse_ether(0.1, "amount") == 10**17  # a JSON number, as written
    assert rules.parse_ether(rules.MAX_WEI // 10**18, "amount") < rules.MAX_WEI
    with pytest.raises(InvalidInput, match="too large"):
        rules.parse_ether(str(rules.MAX_WEI) + "e-18", "amount")
    assert rules.parse_ether(str(rules.MAX_WEI - 1) + "e-18", "amount") == rules.MAX_WEI - 1


@pytest.mark.parametrize("digits", ["١٢٣", "１２３", "१२३", "1_2_3", "12³"])
def test_integers_take_ascii_digits_only(digits):
    """F8: int() took other scripts' digits ("١٢٣" and fullwidth "１２３" were 123)."""
    with pytest.raises(InvalidInput, match="whole number"):
        rules.parse_int(digits, "energy", 1, 10_000_000)
    assert rules.parse_int(" 123 ", "energy", 1, 10_000_000) == 123


def test_a_huge_integer_is_refused_by_its_range_without_echoing_it():
    with pytest.raises(InvalidInput, match="between 1 and 10") as refused:
        rules.parse_int("9" * 5000, "energy", 1, 10)
    assert len(str(refused.value)) < 100


def test_the_zero_address_is_refused():
    """F8: the zero address passed as a recipient: Ether sent there belongs to nobody."""
    for zero in ("0x" + "0" * 40, " 0x" + "0" * 40 + " "):
        with pytest.raises(InvalidInput, match="zero address"):
            rules.parse_address(zero, "recipient")
    assert rules.parse_address("0x" + "0" * 39 + "1") == "0x" + "0" * 39 + "1"


def test_a_bid_whose_lot_costs_0_wei_is_refused():
    """F8: price × Wh < 1000 opened a deal with 0 wei locked (the escrow rounds down) and
    burnt the seller's tokens for nothing; such a bid is refused with the least price that pays."""
    with pytest.raises(InvalidInput, match=r"costs nothing.*at least 0\.0000000000000005 ETH/kWh"):
        bid(start_price=1, price=499, energy_wh=2)
    bid(start_price=1, price=500, energy_wh=2)  # 1 wei: it pays
    with pytest.raises(InvalidInput, match=r"at least 0\.000000000000001 ETH/kWh"):
        rules.check_cost(999, 1, "start bid")
