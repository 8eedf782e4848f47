"""Gas per call stays under the fixed limits the market sends with (marketplace/ledger.py)."""

from __future__ import annotations

from contracts import load_artifact

from .common import ENERGY, LISTING

# Keep in step with marketplace.ledger.GAS: the market sends these calls with fixed gas limits,
# so a contract change that needs more must raise them there too.
BUDGET = {"deploy": 5_000_000, "openDeal": 400_000, "reportDelivery": 200_000,
          "closeDeal": 200_000}


def test_deploys_fit_their_gas_limit(chain):
    for name, args in (("EnergyToken", [chain.admin]),
                       ("EnergyEscrow", [chain.token.address, chain.admin])):
        artifact = load_artifact(name)
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        used = chain.send(factory.constructor(*args), chain.admin)["gasUsed"]
        print(f"deploy {name} gas: {used}")
        assert used < BUDGET["deploy"]


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
        assert gas < BUDGET[label.split()[0]], label
