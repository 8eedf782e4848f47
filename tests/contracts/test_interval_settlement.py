"""IntervalSettlement: honest batches settle; every check refuses what an attacker tries."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_tester.exceptions import TransactionFailed

from contracts.bindings import order_hash, positions_hash, sign_batch

from .common import (
    ANYONE_AFTER,
    CAP,
    COMMUNITY_DEPOSIT,
    CONSUMER,
    DAY_S,
    FILL_PRICE,
    INTERVAL_S,
    LINE_LOSS_BPS,
    REASON,
    REFUSED,
    SELL_FLOOR,
    SETTLED,
    batch,
    buy_order,
    sell_order,
    settlement_domain,
)


def test_an_honest_batch_charges_buyers_credits_sellers_and_nets_tokens(day):
    c = day.chain
    receipt = day.settle(batch(day.through(), [day.buy()], [day.sell()]))
    assert day.refused(receipt) == []
    paid = FILL_PRICE * 1_000 // 1000
    assert day.free() == COMMUNITY_DEPOSIT - paid and day.owed() == paid
    # Minted 1,500 from the closing reading, burned the 1,000 sold: a net 500.
    assert c.token.functions.balanceOf(c.seller).call() == 500
    assert c.token.functions.totalSupply().call() == 500
    settled = c.events(receipt, c.settlement, SETTLED)
    assert [(e["account"], e["side"], e["wh"], e["amountWei"], e["meterWh"]) for e in settled] == [
        (c.buyer, 1, 1_000, paid, 11_000), (c.seller, 2, 1_000, paid, 1_000)]
    (done,) = c.events(receipt, c.settlement, "BatchSettled")
    assert (done["buys"], done["sells"], done["poolWei"]) == (1, 1, 0)
    assert c.settlement.functions.poolWei().call() == 0
    assert c.settlement.functions.positionOf(c.buyer, c.buyer_meter).call()[:3] == [
        day.n + 3, day.t0, 11_000]
    before = c.w3.eth.get_balance(c.seller)
    withdrawn = c.send(c.escrow.functions.withdrawOwed(), c.seller)
    fee = withdrawn["gasUsed"] * withdrawn["effectiveGasPrice"]
    assert c.w3.eth.get_balance(c.seller) == before + paid - fee


def test_a_later_position_needs_no_baseline_nor_order_signature(day):
    c = day.chain
    bo, so = buy_order(c, c.buyer, c.buyer_meter), sell_order(c, c.seller, c.seller_meter)
    day.settle(batch(day.through(), [day.buy(order=bo)], [day.sell(order=so)]))
    later = (day.n + 4, day.n + 4, 1)
    c.travel_to(day.t0 + INTERVAL_S)
    at = c.now()
    buy = day.buy(order=bo, intervals=later, wh=300, closing_wh=11_300, at=at, baseline=None,
                  order_sig=b"")
    sell = day.sell(order=so, intervals=later, wh=300, closing_out=1_300, at=at, baseline=None,
                    order_sig=b"")
    receipt = day.settle(batch(day.n + 4, [buy], [sell]))
    assert day.refused(receipt) == []
    assert day.owed() == FILL_PRICE * 1_300 // 1000
    assert c.token.functions.balanceOf(c.seller).call() == 200  # 500 - 300, nothing new minted


@pytest.mark.parametrize(("side", "change", "reason"), [
    ("buy", {"wei": CAP * 1_000 // 1000 + 1}, "PRICE"),  # above the buyer's cap
    # below the seller's floor less the deployment's most line loss (test_interval_line_loss)
    ("sell", {"wei": SELL_FLOOR * 1_000 * (10_000 - LINE_LOSS_BPS) // 10_000_000 - 1}, "PRICE"),
    ("buy", {"order": {"maxWhPerInterval": 249}}, "OVER_INTERVAL_CAP"),  # 1,000 Wh in 4
    ("sell", {"order": {"maxWhPerInterval": 249}}, "OVER_INTERVAL_CAP"),
    ("buy", {"closing_wh": 10_999}, "OVER_METERED"),  # the meter counted 999 Wh
    ("sell", {"closing_out": 999}, "OVER_METERED"),
    ("buy", {"order": {"expiry": "past"}}, "EXPIRED"),
    ("sell", {"order": {"expiry": "past"}}, "EXPIRED"),
    ("buy", {"signer": "stranger"}, "BAD_ORDER_SIGNATURE"),
    ("sell", {"signer": "stranger"}, "BAD_ORDER_SIGNATURE"),
    ("buy", {"meter_key": "stranger"}, "BAD_READING"),  # a reading its meter did not sign
    ("sell", {"meter_key": "stranger"}, "BAD_READING"),
    ("buy", {"baseline": False}, "NO_BASELINE"),
    ("sell", {"baseline": False}, "NO_BASELINE"),
    ("buy", {"at": "future"}, "READING_OUT_OF_TIME"),
    ("buy", {"baseline": (10_000, 0, "old")}, "READING_OUT_OF_TIME"),  # skips metered Wh
    ("buy", {"intervals": (5, 4, 1)}, "BAD_INTERVALS"),
    ("buy", {"intervals": (0, 4, 6)}, "BAD_INTERVALS"),  # more filled than the span
    ("sell", {"intervals": (0, 4, 5)}, "BAD_INTERVALS"),  # past throughInterval
])
def test_a_position_outside_what_its_owner_signed_settles_nothing(day, side, change, reason):
    c = day.chain
    change = dict(change)
    order_fields = change.pop("order", {})
    if order_fields.get("expiry") == "past":  # expired over one interval before the reading
        order_fields["expiry"] = day.t0 - INTERVAL_S - 1
    if "signer" in change:
        change["signer"] = c.stranger
    if "meter_key" in change:
        change["meter_key"] = c.stranger
    if change.get("at") == "future":
        change["at"] = c.now() + 600
    if isinstance(change.get("baseline"), tuple):
        change["baseline"] = (10_000, 0, day.t0 - 6 * INTERVAL_S - 1)
    if "intervals" in change:
        change["intervals"] = tuple(day.n + i if k < 2 else i
                                    for k, i in enumerate(change["intervals"]))
    maker = day.buy if side == "buy" else day.sell
    owner = c.buyer if side == "buy" else c.seller
    meter = c.buyer_meter if side == "buy" else c.seller_meter
    order = (buy_order if side == "buy" else sell_order)(c, owner, meter, **order_fields)
    attacked = maker(order=order, **change)
    honest_other = day.sell() if side == "buy" else day.buy()
    buys, sells = ([attacked], [honest_other]) if side == "buy" else ([honest_other], [attacked])
    receipt = day.settle(batch(day.through(), buys, sells))
    assert REASON[reason] in day.refused(receipt)
    events = c.events(receipt, c.settlement, REFUSED)
    assert events[0]["account"] == owner
    # The attacked side got nothing: no charge, no credit, no burn, no state.
    assert c.settlement.functions.positionOf(owner, meter).call()[1] == 0
    if side == "buy":  # the seller's sell was then short of the buyer's payment
        assert day.free() == COMMUNITY_DEPOSIT and day.owed() == 0
        assert events[-1]["reason"] == REASON["POOL_SHORT"]
    else:
        assert day.owed() == 0 and day.free() == COMMUNITY_DEPOSIT - FILL_PRICE
        assert c.settlement.functions.poolWei().call() == FILL_PRICE


def test_a_buy_over_the_daily_budget_is_refused(day):
    c = day.chain
    order = buy_order(c, c.buyer, c.buyer_meter, dailyBudgetWei=FILL_PRICE + FILL_PRICE // 2)
    first = day.buy(order=order)
    day.settle(batch(day.through(), [first]))
    c.travel_to(day.t0 + INTERVAL_S)
    second = day.buy(order=order, intervals=(day.n + 4, day.n + 4, 1), wh=1_000,
                     closing_wh=12_000, at=c.now(), baseline=None)
    receipt = day.settle(batch(day.n + 4, [second]))
    assert day.refused(receipt) == [REASON["OVER_DAILY_BUDGET"]]
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE


def test_a_replayed_batch_and_a_reused_reading_settle_nothing_twice(day):
    c = day.chain
    bo, so = buy_order(c, c.buyer, c.buyer_meter), sell_order(c, c.seller, c.seller_meter)
    honest = batch(day.through(), [day.buy(order=bo)], [day.sell(order=so)])
    day.settle(honest)
    receipt = day.settle(honest)  # replaying the same intervals
    # The replayed buy pays nothing in, so the sell finds the pool short before its intervals.
    assert day.refused(receipt) == [REASON["NOT_AFTER_LAST"], REASON["POOL_SHORT"]]
    later = (day.n + 4, day.n + 4, 1)  # later intervals, the same closing reading
    receipt = day.settle(batch(day.n + 4, [day.buy(order=bo, intervals=later, baseline=None)],
                               [day.sell(order=so, intervals=later, baseline=None)]))
    assert day.refused(receipt) == [REASON["READING_OUT_OF_TIME"], REASON["POOL_SHORT"]]
    c.travel_to(day.t0 + 60)
    backwards = day.buy(order=bo, intervals=later, wh=0, wei=0, closing_wh=10_500,
                        at=c.now(), baseline=None)
    assert day.refused(day.settle(batch(day.n + 4, [backwards]))) == [
        REASON["READING_OUT_OF_TIME"]]
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE and day.owed() == FILL_PRICE


def test_a_cancelled_order_settles_nothing_and_only_its_owner_cancels(day, reverts):
    c = day.chain
    order = buy_order(c, c.buyer, c.buyer_meter)
    fns = c.settlement.functions
    from contracts.bindings import buy_order_tuple

    with reverts(f"NotOrderOwner({c.stranger})"):
        c.send(fns.cancelBuyOrder(buy_order_tuple(order)), c.stranger)
    receipt = c.send(fns.cancelBuyOrder(buy_order_tuple(order)), c.buyer)
    digest = order_hash("buy", order, settlement_domain(c))
    assert c.events(receipt, c.settlement, "OrderCancelled") == [
        {"order": digest, "owner": c.buyer}]
    assert fns.cancelled(digest).call()
    # What the meter counted up to two intervals after the cancel still pays (test_review_
    # intervals); a closing reading later than that settles nothing.
    c.travel_to(fns.cancelledAt(digest).call() + 2 * INTERVAL_S + 1)
    late = day.buy(order=order, closing_wh=10_500, wh=500, at=c.now(),
                   baseline=(10_000, 0, c.now() - 3 * INTERVAL_S))
    assert day.refused(day.settle(batch(day.through(), [late]))) == [REASON["CANCELLED"]]
    assert day.free() == COMMUNITY_DEPOSIT


def test_a_meter_of_another_owner_settles_nothing(day):
    c = day.chain
    other, other_meter = c.new_account(), c.new_account()
    c.enroll(other_meter, other, CONSUMER, 500)
    # The buyer's order names a meter enrolled to someone else (it signs, the meter signs).
    order = buy_order(c, c.buyer, other_meter)
    receipt = day.settle(batch(day.through(), [day.buy(order=order)]))
    assert day.refused(receipt) == [REASON["WRONG_METER"]]
    # A seller's order naming the buyer's consumer meter: not a producer of the seller's.
    order = sell_order(c, c.seller, c.buyer_meter)
    day.settle(batch(day.through(), [day.buy()]))
    c.travel_to(day.t0 + 10)
    receipt = day.settle(batch(day.through(), [], [day.sell(order=order)]))
    assert day.refused(receipt) == [REASON["WRONG_METER"]]
    assert day.owed() == 0


def test_short_funds_pool_and_tokens_are_refused(day):
    c = day.chain
    greedy = day.buy(wh=1_000, wei=COMMUNITY_DEPOSIT + 1,
                     order=buy_order(c, c.buyer, c.buyer_meter, capWeiPerKWh=10**18))
    receipt = day.settle(batch(day.through(), [greedy], [day.sell()]))
    assert day.refused(receipt) == [REASON["INSUFFICIENT_FUNDS"], REASON["POOL_SHORT"]]
    day.settle(batch(day.through(), [day.buy()]))
    # The meter sent 1,000 Wh, but the seller sells 2,000 while it holds 1,500 minted.
    short = day.sell(wh=2_000, wei=FILL_PRICE, closing_out=2_000)
    receipt = day.settle(batch(day.through(), [], [short]))
    assert day.refused(receipt) == [REASON["NO_TOKENS"]]
    assert day.owed() == 0
    assert c.token.functions.balanceOf(c.seller).call() == 1_500  # the mint still counts


def test_only_the_settlement_charges_credits_and_settles_readings(day, reverts):
    c = day.chain
    reading, signature = c.reading(c.seller_meter, 1_500, 1_000)
    for fn in (c.escrow.functions.chargeCommunity(c.buyer, 1),
               c.escrow.functions.creditOwed(c.stranger, 1),
               c.token.functions.settleReading(c.seller, reading, signature, 0)):
        with reverts("AccessControlUnauthorizedAccount"):
            c.send(fn, c.stranger)
    assert day.free() == COMMUNITY_DEPOSIT


def test_anyone_sends_an_operator_signed_batch_only_after_the_window(day, reverts):
    c = day.chain
    buys, sells = [day.buy()], [day.sell()]
    digest = positions_hash(buys, sells, [], [])
    assert c.settlement.functions.positionsHash(buys, sells, [], []).call() == digest
    signed = sign_batch(c.key(c.admin), day.through(), digest, settlement_domain(c))
    forged = sign_batch(Account.create(), day.through(), digest, settlement_domain(c))
    with reverts("InvalidOperatorSignature"):
        day.settle(batch(day.through(), buys, sells, operator_sig=forged), c.stranger)
    with reverts(f"SettlementWindowNotOpen({day.t0 + ANYONE_AFTER})"):
        day.settle(batch(day.through(), buys, sells, operator_sig=signed), c.stranger)
    c.travel_to(day.t0 + ANYONE_AFTER)
    # The signature names the positions: anything else in the batch fails it.
    altered = [day.buy(wei=FILL_PRICE + 1)]
    with reverts("InvalidOperatorSignature"):
        day.settle(batch(day.through(), altered, sells, operator_sig=signed), c.stranger)
    receipt = day.settle(batch(day.through(), buys, sells, operator_sig=signed), c.stranger)
    assert day.refused(receipt) == [] and day.owed() == FILL_PRICE


def test_lot_sellers_mints_ride_the_batch(day):
    c = day.chain
    reading = c.reading(c.seller_meter, 700, 0)
    receipt = day.settle(batch(day.through(), mints=[reading]))
    assert c.token.functions.balanceOf(c.seller).call() == 700
    assert len(c.events(receipt, c.token, "EnergyMinted")) == 1


def test_settle_refuses_mints_without_signatures(day):
    c = day.chain
    reading = c.reading(c.seller_meter, 700, 0)
    bad = (day.through(), [], [], [reading[0]], [], b"")
    with pytest.raises(TransactionFailed):
        day.settle(bad)


def test_the_standard_positions_settle_in_the_second_interval_of_a_day(day_start):
    """Regression: the `day` fixture's four intervals before the current one reached back over
    the day's start when its chain's time was in a day's first four intervals (CI's hour
    before midnight UTC), and a position over two days is refused (BAD_INTERVALS)."""
    day, chain = day_start, day_start.chain
    assert day.t0 // INTERVAL_S % (DAY_S // INTERVAL_S) == 1
    receipt = day.settle(batch(day.through(), [day.buy()], [day.sell()]))
    assert day.refused(receipt) == []
    later = (day.n + 4, day.n + 4, 1)
    buy = day.buy(intervals=later, wh=300, closing_wh=11_300, at=chain.now(), baseline=None)
    assert day.refused(day.settle(batch(day.n + 4, [buy]))) == []
