"""Adversaries against the escrow and the token: each attack fails with its specific error.

F3's attacker is the market operator itself: it holds the admin and operator roles, so every
check here is one the contracts make against their own operator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.bindings import bid_tuple, offer_tuple, sign_offer

from .common import (
    BUYER_BASE,
    CONSUMER,
    DEPOSIT,
    ENERGY,
    FLOOR,
    LOTS,
    PRICE,
    PRODUCER,
    SELLER_BASE,
    compile_test_contract,
)

COST = PRICE * ENERGY // 1000


@pytest.fixture(scope="session")
def reentering_code() -> tuple[list, str]:
    """ABI and bytecode of tests/contracts/ReenteringSeller.sol."""
    return compile_test_contract(Path(__file__).with_name("ReenteringSeller.sol"),
                                 "ReenteringSeller")


@pytest.fixture
def approved(enrolled):
    """The standard setup with the seller's tokens approved for the escrow."""
    enrolled.send(enrolled.token.functions.approve(enrolled.escrow.address, 2 * ENERGY),
                  enrolled.seller)
    return enrolled


# -- F3: the operator against the people it serves ------------------------------------------


def test_f3_operator_cannot_enroll_its_meter_as_a_buyers_without_consent(chain, reverts):
    """F3: the operator enrolls a meter it controls as the buyer's consumer meter, signing
    the consent itself: refused, so it cannot report deliveries in the buyer's name."""
    operator_meter = chain.w3.eth.accounts[7]
    with reverts(f"InvalidConsent({chain.buyer}, {chain.admin})"):
        chain.enroll_fn(operator_meter, chain.buyer, CONSUMER, 500,
                        signer=chain.admin).transact({"from": chain.admin})
    assert chain.token.functions.meterOf(operator_meter).call()[1] == 0


def test_f3_operator_cannot_reuse_a_consent_for_another_meter(chain, reverts):
    """F3: a consent the buyer signed for its own meter does not enroll the operator's."""
    operator_meter = chain.w3.eth.accounts[7]
    with reverts("InvalidConsent"):
        chain.enroll_fn(chain.buyer_meter, chain.buyer, CONSUMER, 500,
                        changed={"meter": operator_meter}).transact({"from": chain.admin})


def test_f3_operator_cannot_enroll_itself_at_an_absurd_rating(chain, reverts):
    """F3/F6: the operator enrolls its own producer meter at 2^32 − 1 W to mint at will:
    refused above the token's maxRatedPowerW."""
    meter = chain.w3.eth.accounts[7]
    with reverts(f"InvalidEnrollment({meter})"):
        chain.enroll_fn(meter, chain.admin, PRODUCER, 2**32 - 1).transact({"from": chain.admin})


def test_f3_operator_cannot_sell_to_a_crony_below_the_sellers_floor(approved, reverts):
    """F3: the operator opens a deal from a crony's (validly signed) bid below the floor."""
    chain = approved
    crony, crony_meter = chain.w3.eth.accounts[6], chain.w3.eth.accounts[7]
    chain.enroll(crony_meter, crony, CONSUMER, 500)
    chain.send(chain.escrow.functions.deposit(LOTS), crony, value=DEPOSIT)
    offer = chain.signed_offer(floor=FLOOR)
    bid = chain.signed_bid(offer[0], price=FLOOR - 1, buyer=crony, buyer_meter=crony_meter)
    with reverts(f"PriceBelowFloor({FLOOR - 1}, {FLOOR})"):
        chain.open_with(offer, bid).transact({"from": chain.admin})


def test_f3_operator_cannot_open_a_deal_without_the_sellers_signed_offer(approved, reverts):
    """F3: the operator makes up an offer in the seller's name (signed with its own key)."""
    chain = approved
    offer, _ = chain.signed_offer(floor=1)
    forged = sign_offer(chain.key(chain.admin), chain.chain_id, chain.escrow.address, offer)
    bid = chain.signed_bid(offer, price=1_000)
    with reverts(f"InvalidOfferSignature({chain.seller}, {chain.admin})"):
        chain.open_with((offer, forged), bid).transact({"from": chain.admin})


@pytest.mark.parametrize("field", ["seller", "sellerMeter", "energyWh", "floorPriceWeiPerKWh",
                                   "deadline", "nonce"])
def test_f3_an_altered_offer_is_refused(approved, reverts, field):
    """F3: the operator changes any term of a signed offer (e.g. its own meter as the seller's)."""
    chain = approved
    offer, signature = chain.signed_offer()
    changed = {"seller": chain.stranger, "sellerMeter": chain.w3.eth.accounts[7],
               "energyWh": ENERGY * 2, "floorPriceWeiPerKWh": 1, "deadline": offer["deadline"] + 1,
               "nonce": 2}
    offer[field] = changed[field]
    bid = chain.signed_bid(offer)  # even a bid naming the altered offer
    with reverts("InvalidOfferSignature"):
        chain.open_with((offer, signature), bid).transact({"from": chain.admin})


@pytest.mark.parametrize("field", ["offer", "buyer", "buyerMeter", "priceWeiPerKWh", "maxWh",
                                   "nonce", "expiry"])
def test_an_altered_bid_is_refused(approved, reverts, field):
    """F3: the operator reroutes a bid to another meter, or changes its price or cover."""
    chain = approved
    offer = chain.signed_offer()
    bid, signature = chain.signed_bid(offer[0])
    changed = {"offer": b"\x01" * 32, "buyer": chain.stranger,
               "buyerMeter": chain.w3.eth.accounts[7], "priceWeiPerKWh": PRICE // 2,
               "maxWh": ENERGY * 2, "nonce": 2, "expiry": bid["expiry"] + 1}
    bid[field] = changed[field]
    with reverts("InvalidBidSignature"):
        chain.escrow.functions.openDeal(offer_tuple(offer[0]), offer[1], bid_tuple(bid),
                                        signature, ENERGY).transact({"from": chain.admin})


def test_a_replayed_bid_cannot_open_a_second_deal(approved, reverts):
    chain = approved
    first, second = chain.signed_offer(nonce=1), chain.signed_offer(nonce=2)
    chain.send(chain.open_with(first, chain.signed_bid(first[0], nonce=5)), chain.admin)
    with reverts(f"BidAlreadyUsed({chain.buyer}, 5)"):
        chain.open_with(second, chain.signed_bid(second[0], nonce=5)).transact(
            {"from": chain.admin})


def test_a_bid_signed_by_someone_else_is_refused(approved, reverts):
    chain = approved
    with reverts(f"InvalidBidSignature({chain.buyer}, {chain.stranger})"):
        chain.open_deal(signer=chain.stranger).transact({"from": chain.admin})


def test_an_expired_bid_is_refused(approved, reverts):
    chain = approved
    expiry = chain.now() + 10
    fn = chain.open_deal(expiry=expiry)
    chain.travel_to(expiry + 5)
    with reverts(f"BidExpired({expiry})"):
        fn.transact({"from": chain.admin})


def test_f3_a_meter_reading_forged_by_the_operator_mints_nothing(chain):
    """F3: the operator signs a huge reading for a seller's meter itself: skipped."""
    chain.enroll_producer(chain.seller_meter, chain.seller)
    reading = chain.reading(chain.seller_meter, 5_000, signer=chain.admin)
    receipt = chain.send(chain.mint_fn(reading), chain.admin)
    assert [e["reason"] for e in chain.events(receipt, chain.token, "ReadingRefused")] == [2]
    assert chain.token.functions.totalSupply().call() == 0


def test_f3_the_operator_cannot_report_a_delivery_the_meters_did_not_sign(deal, chain, reverts):
    """F3: reporting delivery needs both meters' keys; the operator's own signature is no use."""
    d = chain.deal(deal)
    seller = chain.reading(d["sellerMeter"], wh_out=1, signer=chain.admin)
    buyer = chain.reading(d["buyerMeter"], wh_in=1, signer=chain.admin)
    with reverts(f"InvalidReading({chain.seller_meter})"):
        chain.escrow.functions.reportDelivery(deal, *seller, *buyer).transact(
            {"from": chain.admin})


def test_f3_one_buyer_meter_cannot_pay_two_deals_at_once(approved, reverts):
    """F3: the operator reports one growth of the buyer's meter to two of the buyer's deals,
    to have it paid twice: the second deal cannot start while the first is open."""
    chain = approved
    first, second = chain.signed_offer(nonce=1), chain.signed_offer(nonce=2)
    chain.send(chain.open_with(first, chain.signed_bid(first[0], nonce=1)), chain.admin)
    chain.send(chain.open_with(second, chain.signed_bid(second[0], nonce=2)), chain.admin)
    chain.start(1)
    with reverts(f"MeterBusy({chain.buyer_meter}, 1)"):
        chain.report_fn(2, BUYER_BASE, SELLER_BASE).transact({"from": chain.admin})
    chain.deliver(1, 500)
    chain.send(chain.escrow.functions.closeDeal(1), chain.buyer)
    # Once the first deal closed, the meter serves the second from where it stands.
    chain.send(chain.report_fn(2, BUYER_BASE + 500, SELLER_BASE + 500), chain.admin)
    chain.send(chain.report_fn(2, BUYER_BASE + 800, SELLER_BASE + 800), chain.stranger)
    assert (chain.deal(1)["deliveredWh"], chain.deal(2)["deliveredWh"]) == (500, 300)


def test_a_stranger_cannot_burn(chain, reverts):
    with reverts("AccessControlUnauthorizedAccount"):
        chain.token.functions.burn(1).transact({"from": chain.seller})


# -- a hostile seller contract ------------------------------------------------------------------


def test_a_re_entering_seller_is_paid_once_and_cannot_re_enter(chain, reentering_code):
    seller = chain.deploy("ReenteringSeller", *reentering_code, chain.escrow.address)
    escrow = chain.escrow.functions
    # The contract signs (ERC-1271) with its deployer's key: the admin account here.
    chain.enroll_producer(chain.seller_meter, seller.address, signer=chain.admin)
    chain.enroll(chain.buyer_meter, chain.buyer, CONSUMER, 500)
    chain.mint(chain.seller_meter, ENERGY)
    chain.send(seller.functions.approve(chain.token.address, chain.escrow.address, ENERGY),
               chain.admin)
    chain.send(escrow.deposit(LOTS), chain.buyer, value=DEPOSIT)
    chain.send(chain.open_deal(offer={"seller": seller.address, "signer": chain.admin}),
               chain.admin)
    chain.send(seller.functions.setDeal(1), chain.admin)

    for cumulative in (500, 1_000, ENERGY):
        chain.deliver(1, cumulative)
    owed = escrow.owedTo(seller.address).call()
    if owed:
        chain.send(seller.functions.pullOwed(), chain.admin)  # full gas: a real re-entry try
    assert seller.functions.reentered().call() == 0
    assert chain.w3.eth.get_balance(seller.address) == COST  # paid exactly once, in full
    assert escrow.owedTo(seller.address).call() == 0
    assert chain.w3.eth.get_balance(chain.escrow.address) == DEPOSIT - COST
    deal = chain.deal(1)
    assert deal["deliveredWh"] == ENERGY and deal["status"] == 2  # delivered in full, closed once
