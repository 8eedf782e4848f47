"""Adversaries against the escrow and the token: each attack fails with its specific error."""

from __future__ import annotations

from pathlib import Path

import pytest

from .common import CONSUMER, DEPOSIT, ENERGY, LISTING, LOTS, PRICE, TTL, compile_test_contract

COST = PRICE * ENERGY // 1000


@pytest.fixture(scope="session")
def reentering_code() -> tuple[list, str]:
    """ABI and bytecode of tests/contracts/ReenteringSeller.sol."""
    return compile_test_contract(Path(__file__).with_name("ReenteringSeller.sol"),
                                 "ReenteringSeller")


def test_a_re_entering_seller_is_paid_once_and_cannot_re_enter(chain, reentering_code):
    seller = chain.deploy("ReenteringSeller", *reentering_code, chain.escrow.address)
    token, escrow = chain.token.functions, chain.escrow.functions
    chain.enroll_producer(chain.seller_meter, seller.address)
    chain.send(token.enrollMeter(chain.buyer_meter, chain.buyer, CONSUMER, 500), chain.admin)
    chain.send(token.mintReading(ENERGY), chain.seller_meter)
    chain.send(seller.functions.approve(chain.token.address, chain.escrow.address, ENERGY),
               chain.admin)
    chain.send(escrow.deposit(LOTS), chain.buyer, value=DEPOSIT)
    chain.send(chain.open_deal(seller=seller.address), chain.admin)
    chain.send(seller.functions.setDeal(1), chain.admin)

    for cumulative in (500, 1_000, ENERGY):
        chain.send(escrow.reportDelivery(1, cumulative), chain.buyer_meter)
    owed = escrow.owedTo(seller.address).call()
    if owed:
        chain.send(seller.functions.pullOwed(), chain.admin)  # full gas: a real re-entry try
    assert seller.functions.reentered().call() == 0
    assert chain.w3.eth.get_balance(seller.address) == COST  # paid exactly once, in full
    assert escrow.owedTo(seller.address).call() == 0
    assert chain.w3.eth.get_balance(chain.escrow.address) == DEPOSIT - COST
    deal = escrow.getDeal(1).call()
    assert deal[5] == ENERGY and deal[9] == 2  # delivered in full, closed once


def test_a_replayed_bid_cannot_open_a_second_deal(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, 2 * ENERGY), chain.seller)
    bid, signature = chain.signed_bid(listing=LISTING)
    from contracts.bindings import bid_tuple

    fn = chain.escrow.functions.openDeal(bid_tuple(bid), signature, ENERGY, chain.now() + TTL)
    chain.send(fn, chain.admin)
    with reverts(f"BidAlreadyUsed({chain.buyer}, 1)"):
        fn.transact({"from": chain.admin})


@pytest.mark.parametrize("field", ["priceWeiPerKWh", "maxWh", "seller", "listingId", "expiry"])
def test_an_altered_bid_is_refused(enrolled, reverts, field):
    from contracts.bindings import bid_tuple

    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    bid, signature = chain.signed_bid()
    changed = {"priceWeiPerKWh": PRICE // 2, "maxWh": ENERGY * 2, "seller": chain.stranger,
               "listingId": LISTING + 1, "expiry": bid["expiry"] + 1}
    bid[field] = changed[field]
    with reverts("InvalidBidSignature"):
        chain.escrow.functions.openDeal(
            bid_tuple(bid), signature, ENERGY, chain.now() + TTL
        ).transact({"from": chain.admin})


def test_a_bid_signed_by_someone_else_is_refused(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    with reverts(f"InvalidBidSignature({chain.buyer}, {chain.stranger})"):
        chain.open_deal(signer=chain.stranger).transact({"from": chain.admin})


def test_an_expired_bid_is_refused(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    expiry = chain.now() + 10
    fn = chain.open_deal(expiry=expiry)
    chain.travel_to(expiry + 5)
    with reverts(f"BidExpired({expiry})"):
        fn.transact({"from": chain.admin})


def test_more_energy_than_the_bid_covers_is_refused(enrolled, reverts):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, 2 * ENERGY), chain.seller)
    with reverts(f"InvalidDeal({LISTING})"):
        chain.open_deal(energy=ENERGY + 1).transact({"from": chain.admin})


def test_a_meter_cannot_mint_beyond_its_rated_power(chain, reverts):
    token = chain.token.functions
    chain.send(token.enrollMeter(chain.seller_meter, chain.seller, 1, 3_600), chain.admin)
    chain.travel_to(chain.now() + 99)  # 3.6 kW for 100 s (the mint's block adds 1): 100 Wh
    with reverts("MintAboveCap(101, 100)"):
        token.mintReading(101).transact({"from": chain.seller_meter})
    chain.send(token.mintReading(100), chain.seller_meter)
    assert token.balanceOf(chain.seller).call() == 100
    # The cap restarts at each mint: a burst right after is refused.
    with reverts("MintAboveCap"):
        token.mintReading(150).transact({"from": chain.seller_meter})
    assert token.mintableWh(chain.seller_meter).call() <= 1


def test_a_stranger_cannot_report_delivery_or_burn(deal, chain, reverts):
    with reverts(f"NotBuyerMeter({chain.stranger})"):
        chain.escrow.functions.reportDelivery(deal, 10).transact({"from": chain.stranger})
    with reverts(f"NotBuyerMeter({chain.seller_meter})"):
        chain.escrow.functions.reportDelivery(deal, 10).transact({"from": chain.seller_meter})
    with reverts("AccessControlUnauthorizedAccount"):
        chain.token.functions.burn(1).transact({"from": chain.seller})
