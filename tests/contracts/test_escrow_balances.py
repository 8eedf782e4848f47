"""EnergyEscrow prepaid balances: one free balance per market, deposits, what deals lock."""

from __future__ import annotations

import pytest

from .common import COMMUNITY, DEPOSIT, ENERGY, LOTS, NOTICE, PRICE


@pytest.mark.parametrize("market", [LOTS, COMMUNITY])
def test_deposit_credits_the_free_balance_of_its_market_only(chain, market):
    escrow = chain.escrow.functions
    receipt = chain.send(escrow.deposit(market), chain.buyer, value=5_000)
    other = COMMUNITY if market == LOTS else LOTS
    assert escrow.freeOf(chain.buyer, market).call() == 5_000
    assert escrow.freeOf(chain.buyer, other).call() == 0
    assert escrow.lockedOf(chain.buyer).call() == 0
    assert chain.w3.eth.get_balance(chain.escrow.address) == 5_000
    assert chain.events(receipt, chain.escrow, "Deposited") == [
        {"buyer": chain.buyer, "market": market, "amount": 5_000}
    ]


@pytest.mark.parametrize("market", [2, 254, 255])
def test_an_unknown_market_is_refused_everywhere(chain, reverts, market):
    escrow = chain.escrow.functions
    with reverts(f"UnknownMarket({market})"):
        escrow.deposit(market).transact({"from": chain.buyer, "value": 1})
    with reverts(f"UnknownMarket({market})"):
        escrow.requestWithdrawal(market, 1).transact({"from": chain.buyer})
    with reverts(f"UnknownMarket({market})"):
        escrow.completeWithdrawal(market).transact({"from": chain.buyer})
    with reverts(f"UnknownMarket({market})"):
        escrow.requestMove(LOTS, market, 1).transact({"from": chain.buyer})
    with reverts(f"UnknownMarket({market})"):
        escrow.requestMove(market, LOTS, 1).transact({"from": chain.buyer})
    with reverts(f"UnknownMarket({market})"):
        escrow.freeOf(chain.buyer, market).call()
    with reverts(f"UnknownMarket({market})"):
        escrow.withdrawalOf(chain.buyer, market).call()


def test_the_notice_and_market_ids_are_public(chain):
    escrow = chain.escrow.functions
    assert escrow.withdrawalNotice().call() == NOTICE
    assert (escrow.LOTS().call(), escrow.COMMUNITY().call(), escrow.OUT().call()) == (0, 1, 255)


def test_a_deal_draws_on_the_lots_market_only(enrolled, reverts):
    chain = enrolled
    escrow = chain.escrow.functions
    cost = PRICE * ENERGY // 1000
    chain.send(chain.token.functions.approve(chain.escrow.address, 2 * ENERGY), chain.seller)
    chain.send(escrow.deposit(COMMUNITY), chain.buyer, value=DEPOSIT)
    chain.send(chain.open_deal(), chain.admin)
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - cost
    assert escrow.freeOf(chain.buyer, COMMUNITY).call() == DEPOSIT
    assert escrow.lockedOf(chain.buyer).call() == cost
    # Community Ether does not cover a lot: a bid needing more than LOTS holds fails.
    price = (DEPOSIT - cost) * 1000 // ENERGY + 1000
    with reverts("InsufficientBalance"):
        chain.open_deal(offer={"nonce": 2}, nonce=2, price=price).transact({"from": chain.admin})


def test_a_closed_deal_refunds_into_the_lots_market(chain, deal):
    escrow = chain.escrow.functions
    chain.deliver(deal, 500)
    chain.send(escrow.closeDeal(deal), chain.buyer)
    paid = PRICE * 500 // 1000
    assert escrow.freeOf(chain.buyer, LOTS).call() == DEPOSIT - paid
    assert escrow.freeOf(chain.buyer, COMMUNITY).call() == 0
    assert escrow.lockedOf(chain.buyer).call() == 0
