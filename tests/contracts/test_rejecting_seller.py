"""A seller that rejects Ether cannot block a deal: its payments are deferred for pulling."""

from __future__ import annotations

from pathlib import Path

import pytest

from .common import DEPOSIT, ENERGY, LOTS, PRICE, compile_test_contract


@pytest.fixture(scope="session")
def rejecting_seller_code() -> tuple[list, str]:
    """ABI and bytecode of tests/contracts/RejectingSeller.sol."""
    return compile_test_contract(Path(__file__).with_name("RejectingSeller.sol"), "RejectingSeller")


@pytest.fixture
def rejecting_deal(chain, rejecting_seller_code):
    """(seller contract, deal id): an open deal whose seller rejects Ether."""
    seller = chain.deploy("RejectingSeller", *rejecting_seller_code)
    escrow = chain.escrow.functions
    # The contract signs (ERC-1271) with its deployer's key: the admin account here.
    chain.enroll_producer(chain.seller_meter, seller.address, signer=chain.admin)
    chain.enroll(chain.buyer_meter, chain.buyer, 2, 500)
    chain.mint(chain.seller_meter, ENERGY)
    chain.send(seller.functions.approve(chain.token.address, chain.escrow.address, ENERGY),
               chain.admin)
    chain.send(escrow.deposit(LOTS), chain.buyer, value=DEPOSIT)
    chain.send(chain.open_deal(offer={"seller": seller.address, "signer": chain.admin}),
               chain.admin)
    return seller, 1


def test_rejected_payment_is_deferred_and_the_deal_completes(chain, rejecting_deal, reverts):
    seller, deal = rejecting_deal
    escrow = chain.escrow.functions
    receipt = chain.deliver(deal, 600)
    step = PRICE * 600 // 1000
    assert chain.events(receipt, chain.escrow, "PaymentDeferred") == [
        {"seller": seller.address, "amount": step}
    ]
    chain.deliver(deal, ENERGY)
    cost = PRICE * ENERGY // 1000
    assert escrow.owedTo(seller.address).call() == cost
    assert chain.deal(deal)["status"] == 2  # DealStatus.Closed
    assert chain.w3.eth.get_balance(seller.address) == 0

    with reverts("TransferFailed"):
        seller.functions.withdrawOwed(chain.escrow.address).transact({"from": chain.admin})
    chain.send(seller.functions.setAccepting(True), chain.admin)
    chain.send(seller.functions.withdrawOwed(chain.escrow.address), chain.admin)
    assert chain.w3.eth.get_balance(seller.address) == cost
    assert escrow.owedTo(seller.address).call() == 0
    with reverts(f"NothingOwed({seller.address})"):
        seller.functions.withdrawOwed(chain.escrow.address).transact({"from": chain.admin})
