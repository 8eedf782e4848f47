"""IntervalSettlement's seller floor with the line loss sellers bear (issue 15, fault 1).

A seller's payout is the buyers' payments split by what its meter sent, so on a lossy bus it
is below floor × sent Wh even when cleared at its floor. The contract allows the deployment's
maximum line loss (LINE_LOSS_BPS, set at deploy) and no more."""

from __future__ import annotations

from .common import (
    COMMUNITY_DEPOSIT,
    FILL_PRICE,
    LINE_LOSS_BPS,
    REASON,
    Day,
    batch,
    sell_order,
)


def floor_order(day: Day) -> dict:
    """The seller's order with its floor at the tests' clearing price."""
    c = day.chain
    return sell_order(c, c.seller, c.seller_meter, floorWeiPerKWh=FILL_PRICE)


def test_an_honest_seller_cleared_at_its_floor_is_paid_despite_the_line_loss(day):
    """Buyers were billed 980 Wh at FILL_PRICE; the seller's meter sent 1,000 Wh (2 % lost)."""
    paid = FILL_PRICE * 980 // 1000
    receipt = day.settle(batch(day.through(), [day.buy(wh=980)],
                               [day.sell(order=floor_order(day), wh=1_000, wei=paid)]))
    assert day.refused(receipt) == []
    assert day.owed() == paid


def test_a_seller_paid_at_exactly_the_deployment_s_loss_is_paid(day):
    paid = FILL_PRICE * 1_000 * (10_000 - LINE_LOSS_BPS) // 10_000_000
    receipt = day.settle(batch(day.through(), [day.buy()],
                               [day.sell(order=floor_order(day), wh=1_000, wei=paid)]))
    assert day.refused(receipt) == []
    assert day.owed() == paid


def test_the_operator_paying_a_seller_below_floor_times_the_loss_bound_is_refused(day):
    """(attack) The operator pays its crony's seller a wei below floor × (1 − max loss)."""
    paid = FILL_PRICE * 1_000 * (10_000 - LINE_LOSS_BPS) // 10_000_000 - 1
    receipt = day.settle(batch(day.through(), [day.buy()],
                               [day.sell(order=floor_order(day), wh=1_000, wei=paid)]))
    assert day.refused(receipt) == [REASON["PRICE"]]
    assert day.owed() == 0


def test_a_huge_floor_is_refused_not_reverted(day):
    """A floor whose product with the Wh passes 2**256 refuses the sell; the batch goes on."""
    c = day.chain
    order = sell_order(c, c.seller, c.seller_meter, floorWeiPerKWh=2**255)
    receipt = day.settle(batch(day.through(), [day.buy()], [day.sell(order=order)]))
    assert day.refused(receipt) == [REASON["PRICE"]]
    assert day.free() == COMMUNITY_DEPOSIT - FILL_PRICE  # the buy settled


def test_parameters_carry_the_loss_bound(chain):
    assert chain.settlement.functions.parameters().call()[-1] == LINE_LOSS_BPS
