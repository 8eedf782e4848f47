"""EnergyEscrow prepaid balances: deposit, withdraw from the free part only."""

from __future__ import annotations

from .common import DEPOSIT, ENERGY, PRICE


def test_deposit_credits_the_free_balance(chain):
    escrow = chain.escrow.functions
    receipt = chain.send(escrow.deposit(), chain.buyer, value=5_000)
    assert escrow.balanceOf(chain.buyer).call() == 5_000
    assert escrow.lockedOf(chain.buyer).call() == 0
    assert chain.w3.eth.get_balance(chain.escrow.address) == 5_000
    assert chain.events(receipt, chain.escrow, "Deposited") == [
        {"buyer": chain.buyer, "amount": 5_000}
    ]


def test_withdraw_returns_ether(chain):
    escrow = chain.escrow.functions
    chain.send(escrow.deposit(), chain.buyer, value=5_000)
    receipt = chain.send(escrow.withdraw(2_000), chain.buyer)
    assert escrow.balanceOf(chain.buyer).call() == 3_000
    assert chain.w3.eth.get_balance(chain.escrow.address) == 3_000
    assert chain.events(receipt, chain.escrow, "Withdrawn") == [
        {"buyer": chain.buyer, "amount": 2_000}
    ]


def test_withdraw_more_than_free_reverts(chain, reverts):
    chain.send(chain.escrow.functions.deposit(), chain.buyer, value=5_000)
    with reverts("InsufficientBalance(5000, 5001)"):
        chain.escrow.functions.withdraw(5_001).transact({"from": chain.buyer})


def test_locked_ether_cannot_be_withdrawn(chain, deal, reverts):
    cost = PRICE * ENERGY // 1000
    free = DEPOSIT - cost
    assert chain.escrow.functions.lockedOf(chain.buyer).call() == cost
    with reverts(f"InsufficientBalance({free}, {free + 1})"):
        chain.escrow.functions.withdraw(free + 1).transact({"from": chain.buyer})
    chain.send(chain.escrow.functions.withdraw(free), chain.buyer)
    assert chain.escrow.functions.balanceOf(chain.buyer).call() == 0
