"""Gas per call stays under the fixed limits the market sends with (marketplace/ledger.py)."""

from __future__ import annotations

from contracts import load_artifact
from marketplace.ledger import GAS

from .common import COMMUNITY, ENERGY, LISTING, LOTS, NOTICE

# The market sends these calls with fixed gas limits (marketplace.ledger.GAS), so a contract
# change that needs more fails here until they are raised there too.
CALLS = ("deposit", "requestWithdrawal", "requestMove", "completeWithdrawal", "openDeal",
         "reportDelivery", "closeDeal")


def test_deploys_fit_their_gas_limit(chain):
    for name, args in (("EnergyToken", [chain.admin]),
                       ("EnergyEscrow", [chain.token.address, chain.admin, NOTICE])):
        artifact = load_artifact(name)
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        used = chain.send(factory.constructor(*args), chain.admin)["gasUsed"]
        print(f"deploy {name} gas: {used}")
        assert used < GAS["deploy"]


def test_deal_calls_fit_their_gas_limits(enrolled):
    chain = enrolled
    escrow = chain.escrow.functions
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    used = {"openDeal": chain.send(chain.open_deal(), chain.admin)["gasUsed"]}
    for label, cumulative in (("first step", 100), ("later step", 200), ("final step", ENERGY)):
        receipt = chain.send(escrow.reportDelivery(1, cumulative), chain.buyer_meter)
        used[f"reportDelivery {label}"] = receipt["gasUsed"]
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    chain.send(chain.open_deal(listing=LISTING + 1, nonce=2), chain.admin)
    chain.send(escrow.reportDelivery(2, 300), chain.buyer_meter)
    used["closeDeal"] = chain.send(escrow.closeDeal(2), chain.buyer)["gasUsed"]
    print(f"gas used: {used}")
    for label, gas in used.items():
        assert gas < GAS[label.split()[0]], label


def test_balance_calls_fit_their_gas_limits(chain):
    escrow, who = chain.escrow.functions, chain.stranger
    used = {}
    # The first deposit of a market writes a fresh slot, the dearest case.
    used["deposit first"] = chain.send(escrow.deposit(LOTS), who, value=10**18)["gasUsed"]
    used["deposit again"] = chain.send(escrow.deposit(LOTS), who, value=10**18)["gasUsed"]
    used["requestWithdrawal"] = chain.send(escrow.requestWithdrawal(LOTS, 10**17), who)["gasUsed"]
    used["requestWithdrawal replacing"] = chain.send(
        escrow.requestWithdrawal(LOTS, 2 * 10**17), who)["gasUsed"]
    used["requestWithdrawal cancelling"] = chain.send(
        escrow.requestWithdrawal(LOTS, 0), who)["gasUsed"]
    used["requestMove"] = chain.send(escrow.requestMove(LOTS, COMMUNITY, 10**17), who)["gasUsed"]
    chain.travel_to(chain.now() + NOTICE)
    used["completeWithdrawal move"] = chain.send(escrow.completeWithdrawal(LOTS), who)["gasUsed"]
    chain.send(escrow.requestWithdrawal(LOTS, 10**17), who)
    chain.travel_to(chain.now() + NOTICE)
    used["completeWithdrawal payout"] = chain.send(escrow.completeWithdrawal(LOTS),
                                                   who)["gasUsed"]
    print(f"gas used: {used}")
    for label, gas in used.items():
        assert gas < GAS[label.split()[0]], label


def test_every_call_the_market_sends_has_a_gas_limit():
    assert set(CALLS) <= set(GAS)
