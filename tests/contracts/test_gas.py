"""Gas per call stays under the fixed limits the market sends with (marketplace/ledger.py)."""

from __future__ import annotations

from eth_account.messages import encode_typed_data

from contracts import load_artifact
from contracts.bindings import PERMIT_TYPES, TOKEN_DOMAIN, offer_tuple, typed_data
from marketplace.ledger import GAS
from marketplace.ledger_meters import MAX_MINT_BATCH, MINT_GAS_BASE, MINT_GAS_PER_READING

from .common import (
    BUYER_BASE,
    COMMUNITY,
    CONSUMER,
    DEAL_DURATION,
    ENERGY,
    LOTS,
    MAX_RATED_W,
    NOTICE,
    PRODUCER,
    SELLER_BASE,
)

# The market sends these calls with fixed gas limits (marketplace.ledger.GAS), so a contract
# change that needs more fails here until they are raised there too.
CALLS = ("deposit", "requestWithdrawal", "requestMove", "completeWithdrawal", "openDeal",
         "reportDelivery", "closeDeal", "closeDealForFault", "enrollMeter", "mintReadings",
         "permit", "cancelOffer")


def test_deploys_fit_their_gas_limit(chain):
    for name, args in (("EnergyToken", [chain.admin, MAX_RATED_W]),
                       ("EnergyEscrow", [chain.token.address, chain.admin, NOTICE,
                                         DEAL_DURATION])):
        artifact = load_artifact(name)
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        used = chain.send(factory.constructor(*args), chain.admin)["gasUsed"]
        print(f"deploy {name} gas: {used}")
        assert used < GAS["deploy"]


def test_deal_calls_fit_their_gas_limits(enrolled):
    chain = enrolled
    escrow = chain.escrow.functions
    chain.send(chain.token.functions.approve(chain.escrow.address, 2 * ENERGY), chain.seller)
    used = {"openDeal": chain.send(chain.open_deal(), chain.admin)["gasUsed"]}
    used["reportDelivery baseline"] = chain.start(1)["gasUsed"]
    for label, cumulative in (("first step", 100), ("later step", 200), ("final step", ENERGY)):
        used[f"reportDelivery {label}"] = chain.deliver(1, cumulative)["gasUsed"]
    chain.send(chain.open_deal(offer={"nonce": 2}, nonce=2), chain.admin)
    # The buyer meter's next deal starts where the first one left it (BUYER_BASE + ENERGY).
    chain.send(chain.report_fn(2, BUYER_BASE + ENERGY, SELLER_BASE + ENERGY), chain.admin)
    chain.send(chain.report_fn(2, BUYER_BASE + ENERGY + 300, SELLER_BASE + ENERGY + 300),
               chain.stranger)
    used["closeDeal"] = chain.send(escrow.closeDeal(2), chain.buyer)["gasUsed"]
    offer, _ = chain.signed_offer(nonce=3)
    used["cancelOffer"] = chain.send(escrow.cancelOffer(offer_tuple(offer)),
                                     chain.seller)["gasUsed"]
    print(f"gas used: {used}")
    for label, gas in used.items():
        assert gas < GAS[label.split()[0]], label


def test_meter_and_token_calls_fit_their_gas_limits(chain):
    """enrollMeter, permit, and mintReadings batches within base + per-reading gas."""
    owners = [chain.new_account() for _ in range(MAX_MINT_BATCH)]
    meters = [chain.new_account() for _ in range(MAX_MINT_BATCH)]
    used = {"enrollMeter first": chain.enroll(meters[0], owners[0], PRODUCER, 5_000)["gasUsed"]}
    for meter, owner in zip(meters[1:], owners[1:], strict=True):
        chain.enroll(meter, owner, PRODUCER, 5_000)
    used["enrollMeter again"] = chain.enroll(meters[0], owners[0], PRODUCER, 6_000)["gasUsed"]
    chain.enroll(chain.buyer_meter, chain.buyer, CONSUMER, 500)
    chain.travel_to(chain.now() + 10)
    baselines = [chain.reading(m) for m in meters]  # each enrollment's first reading
    receipt = chain.send(chain.mint_fn(*baselines), chain.stranger)
    used[f"mintReadings {len(baselines)} baselines"] = receipt["gasUsed"]
    chain.travel_to(chain.now() + 600)
    # Each reading mints to an owner with no tokens yet: a fresh balance slot, the dearest case.
    receipt = chain.send(chain.mint_fn(chain.reading(meters[0], 100)), chain.stranger)
    used["mintReadings 1"] = receipt["gasUsed"]
    batch = [chain.reading(m, 100) for m in meters[1:]]
    receipt = chain.send(chain.mint_fn(*batch), chain.stranger)
    used[f"mintReadings {len(batch)}"] = receipt["gasUsed"]
    assert len(chain.events(receipt, chain.token, "EnergyMinted")) == len(batch)
    deadline = chain.now() + 600
    message = {"owner": chain.seller, "spender": chain.escrow.address, "value": 10**6,
               "nonce": 0, "deadline": deadline}
    full = typed_data(PERMIT_TYPES, TOKEN_DOMAIN, chain.chain_id, chain.token.address, message)
    sig = chain.key(chain.seller).sign_message(encode_typed_data(full_message=full)).signature
    fn = chain.token.functions.permit(chain.seller, chain.escrow.address, 10**6, deadline,
                                      sig[64], sig[:32], sig[32:64])
    used["permit"] = chain.send(fn, chain.admin)["gasUsed"]
    print(f"gas used: {used}; per reading in a batch: "
          f"{(used[f'mintReadings {len(batch)}'] - used['mintReadings 1']) // (len(batch) - 1)}")
    for label, gas in used.items():
        name, _, count = label.partition(" ")
        if name == "mintReadings":
            readings = int(count.split()[0])
            assert gas < MINT_GAS_BASE + MINT_GAS_PER_READING * readings, label
        else:
            assert gas < GAS[name], label


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
