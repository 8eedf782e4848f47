"""EnergyEscrow deals: open, baseline and per-step delivery payments, every way a deal closes."""

from __future__ import annotations

import pytest

from .common import (
    BUYER_BASE,
    DEAL_DURATION,
    DEPOSIT,
    ENERGY,
    LOTS,
    MINTED,
    PRICE,
    SELLER_BASE,
)

OPEN, CLOSED = 1, 2  # DealStatus
COMPLETED, BY_BUYER, BY_SELLER, EXPIRED = 1, 2, 3, 4  # CloseReason
COST = PRICE * ENERGY // 1000


def open_deal(chain, energy=ENERGY, price=PRICE, sender=None, **fields):
    """Send the openDeal of the standard offer and a bid on it."""
    return chain.open_deal(energy=energy, price=price, **fields).transact(
        {"from": sender or chain.admin})


# -- openDeal ------------------------------------------------------------------------------


def test_open_deal_locks_ether_and_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    assert deal == 1
    assert escrow.dealCount().call() == 1
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - COST
    assert escrow.lockedOf(chain.buyer).call() == COST
    assert token.balanceOf(chain.seller).call() == MINTED - ENERGY
    assert token.balanceOf(chain.escrow.address).call() == ENERGY
    d = chain.deal(deal)
    assert (d["buyer"], d["seller"], d["lockedWei"], d["status"], d["started"]) == (
        chain.buyer, chain.seller, COST, OPEN, False
    )
    assert (d["buyerMeter"], d["sellerMeter"]) == (chain.buyer_meter, chain.seller_meter)
    assert escrow.dealOfOffer(d["offer"]).call() == deal


def test_the_offer_and_bid_digests_are_the_eip712_ones(chain):
    from contracts.bindings import bid_tuple, bid_typed_data, digest, offer_tuple

    offer, _ = chain.signed_offer()
    bid, _ = chain.signed_bid(offer)
    escrow = chain.escrow.functions
    assert escrow.hashOffer(offer_tuple(offer)).call() == chain.offer_hash(offer)
    expected = digest(bid_typed_data(chain.chain_id, chain.escrow.address, bid))
    assert escrow.hashBid(bid_tuple(bid)).call() == expected


def test_open_deal_emits_deal_opened_and_expires_a_fixed_duration_later(enrolled):
    """F8: the deal's expiry is the escrow's dealDuration after it opened, chosen by nobody."""
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    offer = chain.signed_offer()
    receipt = chain.send(chain.open_with(offer, chain.signed_bid(offer[0], nonce=9)),
                         chain.admin)
    opened_at = chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert chain.escrow.functions.dealDuration().call() == DEAL_DURATION
    assert chain.events(receipt, chain.escrow, "DealOpened") == [
        {"dealId": 1, "offer": chain.offer_hash(offer[0]), "buyer": chain.buyer,
         "seller": chain.seller, "buyerMeter": chain.buyer_meter,
         "sellerMeter": chain.seller_meter, "priceWeiPerKWh": PRICE, "energyWh": ENERGY,
         "expiresAt": opened_at + DEAL_DURATION, "bidNonce": 9}
    ]
    d = chain.deal(1)
    assert (d["openedAt"], d["expiresAt"]) == (opened_at, opened_at + DEAL_DURATION)


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


# -- reportDelivery --------------------------------------------------------------------------


def test_the_first_report_fixes_both_baselines_and_pays_nothing(chain, deal):
    seller_before = chain.w3.eth.get_balance(chain.seller)
    receipt = chain.start(deal)
    at = chain.deal(deal)["buyerLastAt"]
    assert chain.events(receipt, chain.escrow, "DeliveryStarted") == [
        {"dealId": deal, "buyerWh": BUYER_BASE, "sellerWh": SELLER_BASE, "buyerAt": at,
         "sellerAt": at}
    ]
    assert chain.events(receipt, chain.escrow, "DeliveryReported") == []
    d = chain.deal(deal)
    assert (d["started"], d["buyerBaseWh"], d["sellerBaseWh"], d["deliveredWh"], d["paidWei"]) \
        == (True, BUYER_BASE, SELLER_BASE, 0, 0)
    assert chain.w3.eth.get_balance(chain.seller) == seller_before


def test_each_step_pays_by_the_buyers_meter_and_burns_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    chain.start(deal)
    paid = 0
    for cumulative in (333, 700, 1_501):
        seller_before = chain.w3.eth.get_balance(chain.seller)
        supply_before = token.totalSupply().call()
        delivered_before = chain.deal(deal)["deliveredWh"]
        # The seller's meter sent more than the buyer's received (line loss): the buyer's counts.
        fn = chain.report_fn(deal, BUYER_BASE + cumulative, SELLER_BASE + cumulative + 50)
        receipt = chain.send(fn, chain.stranger)
        step_wh = cumulative - delivered_before
        step_wei = PRICE * cumulative // 1000 - paid
        paid += step_wei
        at = chain.deal(deal)["buyerLastAt"]
        assert chain.w3.eth.get_balance(chain.seller) - seller_before == step_wei
        assert supply_before - token.totalSupply().call() == step_wh
        assert chain.events(receipt, chain.escrow, "DeliveryReported") == [
            {"dealId": deal, "cumulativeWh": cumulative, "stepWh": step_wh, "stepWei": step_wei,
             "buyerWh": BUYER_BASE + cumulative, "sellerWh": SELLER_BASE + cumulative + 50,
             "buyerAt": at, "sellerAt": at}
        ]
    d = chain.deal(deal)
    assert (d["deliveredWh"], d["paidWei"], d["status"]) == (1_501, paid, OPEN)
    assert (d["buyerLastWh"], d["sellerLastWh"]) == (BUYER_BASE + 1_501, SELLER_BASE + 1_551)
    assert escrow.lockedOf(chain.buyer).call() == COST - paid
    assert token.balanceOf(chain.escrow.address).call() == ENERGY - 1_501


def test_a_repeated_report_pays_nothing_more(chain, deal):
    chain.deliver(deal, 400)
    receipt = chain.deliver(deal, 400)
    (reported,) = chain.events(receipt, chain.escrow, "DeliveryReported")
    assert (reported["stepWh"], reported["stepWei"]) == (0, 0)
    assert chain.deal(deal)["paidWei"] == PRICE * 400 // 1000


def test_anyone_may_send_a_report(chain, deal):
    chain.start(deal)
    fn = chain.report_fn(deal, BUYER_BASE + 10, SELLER_BASE + 10)
    chain.send(fn, chain.buyer)
    assert chain.deal(deal)["deliveredWh"] == 10


def test_full_delivery_pays_exactly_the_cost_and_closes(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    seller_before = chain.w3.eth.get_balance(chain.seller)
    chain.deliver(deal, 999)
    receipt = chain.deliver(deal, ENERGY + 50)
    assert chain.w3.eth.get_balance(chain.seller) - seller_before == COST
    assert chain.events(receipt, chain.escrow, "DealClosed") == [
        {"dealId": deal, "reason": COMPLETED, "deliveredWh": ENERGY, "paidWei": COST,
         "refundedWei": 0, "returnedWh": 0}
    ]
    d = chain.deal(deal)
    assert (d["deliveredWh"], d["status"], d["closeReason"]) == (ENERGY, CLOSED, COMPLETED)
    assert escrow.lockedOf(chain.buyer).call() == 0
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - COST
    assert token.totalSupply().call() == MINTED - ENERGY
    assert token.balanceOf(chain.escrow.address).call() == 0


def test_reports_on_a_closed_deal_revert(chain, deal, reverts):
    chain.send(chain.escrow.functions.closeDeal(deal), chain.buyer)
    with reverts(f"DealNotOpen({deal})"):
        chain.report_fn(deal, BUYER_BASE, SELLER_BASE).transact({"from": chain.stranger})


# -- closeDeal ------------------------------------------------------------------------------


def test_buyer_close_refunds_ether_and_returns_tokens(chain, deal):
    escrow, token = chain.escrow.functions, chain.token.functions
    chain.deliver(deal, 500)
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
    assert chain.deal(deal)["closeReason"] == BY_BUYER


def test_seller_may_close(chain, deal):
    chain.send(chain.escrow.functions.closeDeal(deal), chain.seller)
    assert chain.deal(deal)["closeReason"] == BY_SELLER
    assert chain.token.functions.balanceOf(chain.seller).call() == MINTED


def test_stranger_cannot_close_before_expiry(chain, deal, reverts):
    with reverts(f"NotDealParty({chain.stranger})"):
        chain.escrow.functions.closeDeal(deal).transact({"from": chain.stranger})


def test_anyone_closes_after_expiry(chain, deal):
    chain.travel_to(chain.deal(deal)["expiresAt"] + 1)
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


@pytest.mark.parametrize("delivered", [0, 1, ENERGY - 1])
def test_a_closed_deal_settles_exactly_what_was_delivered(chain, deal, delivered):
    if delivered:
        chain.deliver(deal, delivered)
    receipt = chain.send(chain.escrow.functions.closeDeal(deal), chain.seller)
    (closed,) = chain.events(receipt, chain.escrow, "DealClosed")
    paid = PRICE * delivered // 1000
    assert (closed["deliveredWh"], closed["paidWei"], closed["refundedWei"]) == (
        delivered, paid, COST - paid)
