"""Review of IntervalSettlement as its attackers: the operator, a buyer, a seller, a stranger.

Each test does what the attacker did; fixed ones assert the attacker now gets nothing, open
ones are strict xfails (docs/SECURITY.md says what is still trusted)."""

from __future__ import annotations

import pytest

from contracts.bindings import buy_order_tuple

from .common import (
    COMMUNITY,
    COMMUNITY_DEPOSIT,
    FILL_PRICE,
    INTERVAL_S,
    NOTICE,
    REASON,
    batch,
    buy_order,
)


def test_a_buyer_who_cancels_after_drawing_still_pays(day_mid):
    """(b) The buyer drew 1 kWh, then cancels its order on chain before the batch lands."""
    # day_mid: its later position (n+4, n+5) must lie in one day, or it is BAD_INTERVALS.
    day = day_mid
    c = day.chain
    order = buy_order(c, c.buyer, c.buyer_meter)
    c.send(c.settlement.functions.cancelBuyOrder(buy_order_tuple(order)), c.buyer)
    receipt = day.settle(batch(day.through(), [day.buy(order=order)], [day.sell()]))
    assert day.refused(receipt) == []
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE and day.owed() == FILL_PRICE
    # What its meter counts over two intervals after the cancel no longer settles.
    cancelled_at = c.settlement.functions.cancelledAt(day.chain.settlement.functions
                                                      .hashBuyOrder(buy_order_tuple(order))
                                                      .call()).call()
    assert cancelled_at >= day.t0
    c.travel_to(cancelled_at + 2 * INTERVAL_S + 1)
    later = day.buy(order=order, intervals=(day.n + 4, day.n + 5, 2), wh=100, closing_wh=11_100,
                    at=c.now(), baseline=None, order_sig=b"")
    assert day.refused(day.settle(batch(day.n + 5, [later]))) == [REASON["CANCELLED"]]
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE


@pytest.mark.xfail(strict=True, reason="open (SECURITY 65): interval numbers are the operator's")
def test_the_operator_numbers_fills_into_a_later_day_to_reset_the_daily_budget(day):
    """(a) Budget 1.5 fills a day; the operator numbers the second fill a day later."""
    c = day.chain
    order = buy_order(c, c.buyer, c.buyer_meter, dailyBudgetWei=FILL_PRICE + FILL_PRICE // 2)
    day.settle(batch(day.through(), [day.buy(order=order)]))
    c.travel_to(day.t0 + INTERVAL_S)
    tomorrow = day.n + 4 + 86_400 // INTERVAL_S
    second = day.buy(order=order, intervals=(tomorrow, tomorrow, 1), closing_wh=12_000,
                     at=c.now(), baseline=None)
    assert day.refused(day.settle(batch(tomorrow, [second]))) == [REASON["OVER_DAILY_BUDGET"]]


@pytest.mark.xfail(strict=True, reason="open (SECURITY 65): interval numbers are the operator's")
def test_the_operator_widens_a_span_to_bill_past_the_cap_per_interval(day):
    """(a) 250 Wh an interval signed; 1,000 Wh metered over one interval, billed as four."""
    c = day.chain
    order = buy_order(c, c.buyer, c.buyer_meter, maxWhPerInterval=250)
    # Baseline one interval before the closing reading, yet the fill claims four intervals.
    wide = day.buy(order=order, baseline=(10_000, 0, day.t0 - INTERVAL_S))
    assert day.refused(day.settle(batch(day.through(), [wide]))) == [REASON["OVER_INTERVAL_CAP"]]


@pytest.mark.xfail(strict=True, reason="open (SECURITY 66): a released meter settles nothing")
def test_a_buyer_who_releases_its_meter_after_drawing_never_pays(day):
    """(b) The buyer drew 1 kWh, then releases its consumer meter before the batch."""
    c = day.chain
    c.send(c.token.functions.releaseMeter(c.buyer_meter), c.buyer)
    day.settle(batch(day.through(), [day.buy()], [day.sell()]))
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE and day.owed() == FILL_PRICE


def test_a_pending_withdrawal_still_pays_for_what_was_drawn(day):
    """(b) The buyer asks to take its whole COMMUNITY balance out before the batch lands."""
    c = day.chain
    c.send(c.escrow.functions.requestWithdrawal(COMMUNITY, COMMUNITY_DEPOSIT), c.buyer)
    assert day.refused(day.settle(batch(day.through(), [day.buy()], [day.sell()]))) == []
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE and day.owed() == FILL_PRICE


@pytest.mark.xfail(strict=True, reason="open (SECURITY 67): the notice is the seller's only bound")
def test_a_buyer_who_withdraws_after_the_notice_before_its_batch_never_pays(day):
    """(b) The operator did not settle within the notice; the buyer completes its withdrawal."""
    c = day.chain
    c.send(c.escrow.functions.requestWithdrawal(COMMUNITY, COMMUNITY_DEPOSIT), c.buyer)
    c.travel_to(c.now() + NOTICE)
    c.send(c.escrow.functions.completeWithdrawal(COMMUNITY), c.buyer)
    day.settle(batch(day.through(), [day.buy()], [day.sell()]))
    assert day.owed() == FILL_PRICE
