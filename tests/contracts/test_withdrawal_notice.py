"""Withdrawals and moves wait out the escrow's notice, so a leading bid's cover stays put."""

from __future__ import annotations

from pathlib import Path

import pytest

from .common import (
    COMMUNITY,
    DEPOSIT,
    ENERGY,
    LOTS,
    NOTICE,
    OUT,
    PRICE,
    compile_test_contract,
)

COST = PRICE * ENERGY // 1000


def fee(receipt) -> int:
    """Wei a transaction's sender paid for gas."""
    return receipt["gasUsed"] * receipt["effectiveGasPrice"]


def request(chain, amount, market=LOTS, sender=None):
    """A requestWithdrawal's receipt and the availableAt it announced."""
    receipt = chain.send(chain.escrow.functions.requestWithdrawal(market, amount),
                         sender or chain.buyer)
    (event,) = chain.events(receipt, chain.escrow, "WithdrawalRequested")
    return receipt, event["availableAt"]


@pytest.fixture
def funded(chain):
    """The buyer holds 5 000 wei free in LOTS."""
    chain.send(chain.escrow.functions.deposit(LOTS), chain.buyer, value=5_000)
    return chain


def test_a_request_lowers_nothing_until_completed(funded):
    chain, escrow = funded, funded.escrow.functions
    receipt, available_at = request(chain, 2_000)
    block = chain.w3.eth.get_block(receipt["blockNumber"])
    assert available_at == block["timestamp"] + NOTICE
    assert chain.events(receipt, chain.escrow, "WithdrawalRequested") == [{
        "buyer": chain.buyer, "market": LOTS, "amount": 2_000, "availableAt": available_at,
        "toMarket": OUT,
    }]
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [2_000, available_at, OUT]
    assert escrow.withdrawalOf(chain.buyer, COMMUNITY).call() == [0, 0, 0]
    assert escrow.freeOf(chain.buyer, LOTS).call() == 5_000
    assert chain.w3.eth.get_balance(chain.escrow.address) == 5_000


def test_completing_before_the_notice_is_over_reverts(funded, reverts):
    chain = funded
    _, available_at = request(chain, 2_000)
    with reverts(f"NoticeNotOver({available_at})"):
        chain.escrow.functions.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    chain.travel_to(available_at - 10)
    with reverts(f"NoticeNotOver({available_at})"):
        chain.escrow.functions.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    assert chain.escrow.functions.freeOf(chain.buyer, LOTS).call() == 5_000


def test_after_the_notice_the_requested_amount_is_paid_once(funded, reverts):
    chain, escrow = funded, funded.escrow.functions
    _, available_at = request(chain, 2_000)
    chain.travel_to(available_at)
    before = chain.w3.eth.get_balance(chain.buyer)
    receipt = chain.send(escrow.completeWithdrawal(LOTS), chain.buyer)
    assert chain.w3.eth.get_balance(chain.buyer) == before + 2_000 - fee(receipt)
    assert chain.events(receipt, chain.escrow, "Withdrawn") == [
        {"buyer": chain.buyer, "market": LOTS, "amount": 2_000}
    ]
    assert escrow.freeOf(chain.buyer, LOTS).call() == 3_000
    assert chain.w3.eth.get_balance(chain.escrow.address) == 3_000
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [0, 0, 0]
    with reverts(f"NoWithdrawalPending({LOTS})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})


def test_a_request_above_the_free_balance_is_refused(funded, reverts):
    chain, escrow = funded, funded.escrow.functions
    with reverts("InsufficientBalance(5000, 5001)"):
        escrow.requestWithdrawal(LOTS, 5_001).transact({"from": chain.buyer})
    with reverts("InsufficientBalance(0, 1)"):
        escrow.requestMove(COMMUNITY, LOTS, 1).transact({"from": chain.buyer})
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [0, 0, 0]


def test_locked_ether_cannot_be_asked_for(chain, deal, reverts):
    free = DEPOSIT - COST
    with reverts(f"InsufficientBalance({free}, {free + 1})"):
        chain.escrow.functions.requestWithdrawal(LOTS, free + 1).transact({"from": chain.buyer})


def test_with_nothing_free_the_request_stays_pending(chain, deal, reverts):
    escrow = chain.escrow.functions
    free = DEPOSIT - COST
    _, available_at = request(chain, free)
    price = free * 1000 // ENERGY  # a second deal takes all the first left free
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    chain.send(chain.open_deal(offer={"nonce": 2}, nonce=2, price=price), chain.admin)
    assert escrow.freeOf(chain.buyer, LOTS).call() == 0
    chain.travel_to(available_at)
    with reverts(f"InsufficientBalance(0, {free})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    # A refund from a closed deal is free again; the request, still pending, takes it.
    chain.send(escrow.closeDeal(deal), chain.buyer)
    receipt = chain.send(escrow.completeWithdrawal(LOTS), chain.buyer)
    assert chain.events(receipt, chain.escrow, "Withdrawn")[0]["amount"] == COST


def test_the_leading_bidder_cannot_pull_its_cover_before_the_close(enrolled, reverts):
    """The attack: bid to lead, ask for the whole deposit back at once, hope the deal fails."""
    chain, escrow = enrolled, enrolled.escrow.functions
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    # The portal's longest wait from a bid to its deal opening is the notice itself.
    offer = chain.signed_offer(deadline=chain.now() + NOTICE)
    bid, signature = chain.signed_bid(offer[0], expiry=chain.now() + NOTICE)
    _, available_at = request(chain, DEPOSIT)  # right after bidding
    assert available_at >= bid["expiry"]
    chain.travel_to(bid["expiry"] - 1)  # the auction closed as late as it can
    with reverts(f"NoticeNotOver({available_at})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    receipt = chain.send(chain.open_with(offer, (bid, signature)), chain.admin)
    assert chain.events(receipt, chain.escrow, "DealOpened")[0]["buyer"] == chain.buyer
    assert escrow.lockedOf(chain.buyer).call() == COST
    chain.travel_to(available_at)
    before = chain.w3.eth.get_balance(chain.buyer)
    receipt = chain.send(escrow.completeWithdrawal(LOTS), chain.buyer)
    # The bidder gets only what the deal left; the deal keeps its Ether and pays on delivery.
    assert chain.w3.eth.get_balance(chain.buyer) == before + DEPOSIT - COST - fee(receipt)
    assert escrow.freeOf(chain.buyer, LOTS).call() == 0
    assert escrow.lockedOf(chain.buyer).call() == COST
    seller_before = chain.w3.eth.get_balance(chain.seller)
    chain.deliver(1, ENERGY)
    assert chain.w3.eth.get_balance(chain.seller) == seller_before + COST
    assert chain.w3.eth.get_balance(chain.escrow.address) == 0


def test_a_new_request_replaces_the_old_and_restarts_the_notice(funded, reverts):
    chain, escrow = funded, funded.escrow.functions
    _, first = request(chain, 1_000)
    chain.travel_to(first - NOTICE // 2)
    _, second = request(chain, 4_000)
    assert second > first
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [4_000, second, OUT]
    chain.travel_to(first)
    with reverts(f"NoticeNotOver({second})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    chain.travel_to(second)
    receipt = chain.send(escrow.completeWithdrawal(LOTS), chain.buyer)
    assert chain.events(receipt, chain.escrow, "Withdrawn")[0]["amount"] == 4_000


def test_amount_zero_cancels_the_request(funded, reverts):
    chain, escrow = funded, funded.escrow.functions
    _, available_at = request(chain, 2_000)
    receipt = chain.send(escrow.requestWithdrawal(LOTS, 0), chain.buyer)
    assert chain.events(receipt, chain.escrow, "WithdrawalRequested") == [{
        "buyer": chain.buyer, "market": LOTS, "amount": 0, "availableAt": 0, "toMarket": OUT,
    }]
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [0, 0, 0]
    chain.travel_to(available_at)
    with reverts(f"NoWithdrawalPending({LOTS})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    assert escrow.freeOf(chain.buyer, LOTS).call() == 5_000


def test_a_move_between_markets_waits_out_the_notice(funded, reverts):
    chain, escrow = funded, funded.escrow.functions
    receipt = chain.send(escrow.requestMove(LOTS, COMMUNITY, 3_000), chain.buyer)
    (event,) = chain.events(receipt, chain.escrow, "WithdrawalRequested")
    assert (event["market"], event["amount"], event["toMarket"]) == (LOTS, 3_000, COMMUNITY)
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [3_000, event["availableAt"],
                                                            COMMUNITY]
    with reverts(f"NoticeNotOver({event['availableAt']})"):
        escrow.completeWithdrawal(LOTS).transact({"from": chain.buyer})
    chain.travel_to(event["availableAt"])
    before = chain.w3.eth.get_balance(chain.buyer)
    receipt = chain.send(escrow.completeWithdrawal(LOTS), chain.buyer)
    assert chain.events(receipt, chain.escrow, "Moved") == [
        {"buyer": chain.buyer, "fromMarket": LOTS, "toMarket": COMMUNITY, "amount": 3_000}
    ]
    assert chain.events(receipt, chain.escrow, "Withdrawn") == []
    assert escrow.freeOf(chain.buyer, LOTS).call() == 2_000
    assert escrow.freeOf(chain.buyer, COMMUNITY).call() == 3_000
    assert chain.w3.eth.get_balance(chain.buyer) == before - fee(receipt)  # no Ether left
    assert chain.w3.eth.get_balance(chain.escrow.address) == 5_000


def test_a_move_to_the_same_market_is_refused(funded, reverts):
    with reverts(f"SameMarket({LOTS})"):
        funded.escrow.functions.requestMove(LOTS, LOTS, 1).transact({"from": funded.buyer})


def test_each_market_has_its_own_request(funded):
    chain, escrow = funded, funded.escrow.functions
    chain.send(escrow.deposit(COMMUNITY), chain.buyer, value=700)
    _, lots_at = request(chain, 1_000, LOTS)
    _, community_at = request(chain, 700, COMMUNITY)
    chain.travel_to(max(lots_at, community_at))
    receipt = chain.send(escrow.completeWithdrawal(COMMUNITY), chain.buyer)
    assert chain.events(receipt, chain.escrow, "Withdrawn") == [
        {"buyer": chain.buyer, "market": COMMUNITY, "amount": 700}
    ]
    assert escrow.withdrawalOf(chain.buyer, LOTS).call() == [1_000, lots_at, OUT]
    assert escrow.freeOf(chain.buyer, LOTS).call() == 5_000


# -- adversarial buyers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def buyer_code() -> tuple[list, str]:
    """ABI and bytecode of tests/contracts/ReenteringBuyer.sol."""
    return compile_test_contract(Path(__file__).with_name("ReenteringBuyer.sol"),
                                 "ReenteringBuyer")


def test_a_re_entering_buyer_is_paid_once_and_cannot_re_enter(chain, buyer_code):
    buyer = chain.deploy("ReenteringBuyer", *buyer_code, chain.escrow.address)
    calls, escrow = buyer.functions, chain.escrow.functions
    chain.send(calls.deposit(LOTS), chain.stranger, value=10_000)
    receipt = chain.send(calls.requestWithdrawal(LOTS, 4_000), chain.stranger)
    (event,) = chain.events(receipt, chain.escrow, "WithdrawalRequested")
    chain.travel_to(event["availableAt"])
    chain.send(calls.completeWithdrawal(LOTS), chain.stranger)
    assert calls.attempts().call() == 1 and calls.reentered().call() == 0
    assert chain.w3.eth.get_balance(buyer.address) == 4_000  # paid exactly once
    assert escrow.freeOf(buyer.address, LOTS).call() == 6_000
    assert escrow.freeOf(buyer.address, COMMUNITY).call() == 0
    assert escrow.withdrawalOf(buyer.address, LOTS).call() == [0, 0, 0]
    assert chain.w3.eth.get_balance(chain.escrow.address) == 6_000


def test_a_buyer_refusing_ether_keeps_its_request(chain, buyer_code, reverts):
    buyer = chain.deploy("ReenteringBuyer", *buyer_code, chain.escrow.address)
    calls, escrow = buyer.functions, chain.escrow.functions
    chain.send(calls.deposit(LOTS), chain.stranger, value=1_000)
    receipt = chain.send(calls.requestWithdrawal(LOTS, 1_000), chain.stranger)
    (event,) = chain.events(receipt, chain.escrow, "WithdrawalRequested")
    chain.send(calls.setRefusing(True), chain.stranger)
    chain.travel_to(event["availableAt"])
    with reverts(f"TransferFailed({buyer.address}, 1000)"):
        calls.completeWithdrawal(LOTS).transact({"from": chain.stranger})
    assert escrow.freeOf(buyer.address, LOTS).call() == 1_000
    assert escrow.withdrawalOf(buyer.address, LOTS).call() == [1_000, event["availableAt"], OUT]
