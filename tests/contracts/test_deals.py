"""EnergyEscrow deals: open, per-step delivery payments, and every way a deal closes."""

from __future__ import annotations

import pytest

from .common import DEPOSIT, ENERGY, LISTING, LOTS, MINTED, PRICE, TTL

OPEN, CLOSED = 1, 2  # DealStatus
COMPLETED, BY_BUYER, BY_SELLER, EXPIRED = 1, 2, 3, 4  # CloseReason
COST = PRICE * ENERGY // 1000


def deal_of(chain, deal_id):
    """A deal as a dict keyed by the Deal struct's field names."""
    fields = chain.escrow.functions.getDeal(deal_id).call()
    names = [
        "listingId", "buyer", "seller", "priceWeiPerKWh", "energyWh", "deliveredWh", "paidWei",
        "lockedWei", "expiresAt", "status", "closeReason",
    ]
    return dict(zip(names, fields, strict=True))


def open_deal(chain, listing=LISTING, energy=ENERGY, price=PRICE, sender=None, **fields):
    """Send the openDeal of a standard bid the buyer signed."""
    fn = chain.open_deal(energy=energy, listing=listing, price=price, **fields)
    return fn.transact({"from": sender or chain.admin})


# -- openDeal ------------------------------------------------------------------------------


def test_open_deal_locks_ether_and_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    assert deal == 1
    assert escrow.dealCount().call() == 1
    assert escrow.dealOfListing(LISTING).call() == 1
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - COST
    assert escrow.lockedOf(chain.buyer).call() == COST
    assert token.balanceOf(chain.seller).call() == MINTED - ENERGY
    assert token.balanceOf(chain.escrow.address).call() == ENERGY
    d = deal_of(chain, deal)
    assert (d["buyer"], d["seller"], d["lockedWei"], d["status"]) == (
        chain.buyer, chain.seller, COST, OPEN
    )


def test_open_deal_emits_deal_opened(enrolled):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    expires = chain.now() + TTL
    receipt = chain.send(chain.open_deal(expires=expires), chain.admin)
    assert chain.events(receipt, chain.escrow, "DealOpened") == [
        {"dealId": 1, "listingId": LISTING, "buyer": chain.buyer, "seller": chain.seller,
         "priceWeiPerKWh": PRICE, "energyWh": ENERGY, "expiresAt": expires}
    ]


def test_only_the_operator_opens_deals(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    with reverts("AccessControlUnauthorizedAccount"):
        open_deal(chain, sender=chain.buyer)


def test_open_deal_needs_the_buyers_free_balance(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    price = DEPOSIT * 1000 // ENERGY + 1000
    with reverts(f"InsufficientBalance({DEPOSIT}, {price * ENERGY // 1000})"):
        open_deal(chain, price=price)


def test_open_deal_needs_the_sellers_approval(enrolled, reverts):
    with reverts(f"ERC20InsufficientAllowance({enrolled.escrow.address}, 0, {ENERGY})"):
        open_deal(enrolled)


def test_one_deal_per_listing(chain, deal, reverts):
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    with reverts(f"ListingAlreadySettled({LISTING})"):
        open_deal(chain, nonce=2)  # another bid for the same listing


# -- reportDelivery --------------------------------------------------------------------------


def test_each_step_pays_the_seller_and_burns_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    paid = 0
    for cumulative in (333, 700, 1_501):
        seller_before = chain.w3.eth.get_balance(chain.seller)
        supply_before = token.totalSupply().call()
        delivered_before = deal_of(chain, deal)["deliveredWh"]
        receipt = chain.send(escrow.reportDelivery(deal, cumulative), chain.buyer_meter)
        step_wh = cumulative - delivered_before
        step_wei = PRICE * cumulative // 1000 - paid
        paid += step_wei
        assert chain.w3.eth.get_balance(chain.seller) - seller_before == step_wei
        assert supply_before - token.totalSupply().call() == step_wh
        assert chain.events(receipt, chain.escrow, "DeliveryReported") == [
            {"dealId": deal, "cumulativeWh": cumulative, "stepWh": step_wh, "stepWei": step_wei}
        ]
    d = deal_of(chain, deal)
    assert (d["deliveredWh"], d["paidWei"], d["status"]) == (1_501, paid, OPEN)
    assert escrow.lockedOf(chain.buyer).call() == COST - paid
    assert token.balanceOf(chain.escrow.address).call() == ENERGY - 1_501


def test_repeated_report_is_a_no_op(chain, deal):
    escrow = chain.escrow.functions
    chain.send(escrow.reportDelivery(deal, 400), chain.buyer_meter)
    receipt = chain.send(escrow.reportDelivery(deal, 400), chain.buyer_meter)
    assert chain.events(receipt, chain.escrow, "DeliveryReported") == []
    assert deal_of(chain, deal)["paidWei"] == PRICE * 400 // 1000


def test_backwards_report_reverts(chain, deal, reverts):
    chain.send(chain.escrow.functions.reportDelivery(deal, 400), chain.buyer_meter)
    with reverts("DeliveryWentBackwards(400, 399)"):
        chain.escrow.functions.reportDelivery(deal, 399).transact({"from": chain.buyer_meter})


@pytest.mark.parametrize("reporter", ["stranger", "buyer", "seller_meter"])
def test_only_the_buyers_consumer_meter_reports(chain, deal, reverts, reporter):
    address = getattr(chain, reporter)
    with reverts(f"NotBuyerMeter({address})"):
        chain.escrow.functions.reportDelivery(deal, 10).transact({"from": address})


def test_another_buyers_meter_cannot_report(chain, deal, reverts):
    chain.send(
        chain.token.functions.enrollMeter(chain.stranger, chain.stranger, 2, 500), chain.admin
    )
    with reverts(f"NotBuyerMeter({chain.stranger})"):
        chain.escrow.functions.reportDelivery(deal, 10).transact({"from": chain.stranger})


def test_full_delivery_pays_exactly_the_cost_and_closes(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    seller_before = chain.w3.eth.get_balance(chain.seller)
    chain.send(escrow.reportDelivery(deal, 999), chain.buyer_meter)
    receipt = chain.send(escrow.reportDelivery(deal, ENERGY + 50), chain.buyer_meter)
    assert chain.w3.eth.get_balance(chain.seller) - seller_before == COST
    assert chain.events(receipt, chain.escrow, "DealClosed") == [
        {"dealId": deal, "reason": COMPLETED, "deliveredWh": ENERGY, "paidWei": COST,
         "refundedWei": 0, "returnedWh": 0}
    ]
    d = deal_of(chain, deal)
    assert (d["deliveredWh"], d["status"], d["closeReason"]) == (ENERGY, CLOSED, COMPLETED)
    assert escrow.lockedOf(chain.buyer).call() == 0
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - COST
    assert token.totalSupply().call() == MINTED - ENERGY
    assert token.balanceOf(chain.escrow.address).call() == 0


def test_reports_on_a_closed_deal_revert(chain, deal, reverts):
    chain.send(chain.escrow.functions.closeDeal(deal), chain.buyer)
    with reverts(f"DealNotOpen({deal})"):
        chain.escrow.functions.reportDelivery(deal, 10).transact({"from": chain.buyer_meter})


# -- closeDeal ------------------------------------------------------------------------------


def test_buyer_close_refunds_ether_and_returns_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    chain.send(escrow.reportDelivery(deal, 500), chain.buyer_meter)
    paid = PRICE * 500 // 1000
    receipt = chain.send(escrow.closeDeal(deal), chain.buyer)
    assert chain.events(receipt, chain.escrow, "DealClosed") == [
        {"dealId": deal, "reason": BY_BUYER, "deliveredWh": 500, "paidWei": paid,
         "refundedWei": COST - paid, "returnedWh": ENERGY - 500}
    ]
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - paid
    assert escrow.lockedOf(chain.buyer).call() == 0
    assert token.balanceOf(chain.seller).call() == MINTED - 500
    assert token.balanceOf(chain.escrow.address).call() == 0
    assert deal_of(chain, deal)["closeReason"] == BY_BUYER


def test_seller_may_close(chain, deal):
    chain.send(chain.escrow.functions.closeDeal(deal), chain.seller)
    assert deal_of(chain, deal)["closeReason"] == BY_SELLER
    assert chain.token.functions.balanceOf(chain.seller).call() == MINTED


def test_stranger_cannot_close_before_expiry(chain, deal, reverts):
    with reverts(f"NotDealParty({chain.stranger})"):
        chain.escrow.functions.closeDeal(deal).transact({"from": chain.stranger})


def test_anyone_closes_after_expiry(chain, deal):
    chain.travel_to(deal_of(chain, deal)["expiresAt"] + 1)
    receipt = chain.send(chain.escrow.functions.closeDeal(deal), chain.stranger)
    (closed,) = chain.events(receipt, chain.escrow, "DealClosed")
    assert (closed["reason"], closed["refundedWei"], closed["returnedWh"]) == (
        EXPIRED, COST, ENERGY
    )
    assert chain.escrow.functions.freeOf(chain.buyer, LOTS).call() == DEPOSIT


def test_closing_twice_reverts(chain, deal, reverts):
    chain.send(chain.escrow.functions.closeDeal(deal), chain.buyer)
    with reverts(f"DealNotOpen({deal})"):
        chain.escrow.functions.closeDeal(deal).transact({"from": chain.seller})
