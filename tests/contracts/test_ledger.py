"""marketplace.ledger on the embedded chain: the new ABI as the market calls it."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from contracts.bindings import offer_hash, recover_typed
from firmware_bridge.signing import sign_reading
from geth_private import TxManager, backend_from_uri
from marketplace.errors import ChainActionFailed
from marketplace.ledger import CONSUMER, PRODUCER, Ledger
from marketplace.ledger_meters import MAX_MINT_BATCH

from .common import DEAL_DURATION, MAX_RATED_W, NOTICE

ETH = 10**18


@pytest.fixture(scope="module")
def ledger():
    """A Ledger with freshly deployed contracts on an embedded chain."""
    with backend_from_uri("embedded://") as node:
        ledger = Ledger(TxManager(node), node.faucet())
        ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W)
        yield ledger


def consent(ledger, meter, owner, kind, rated):
    """(deadline, signature) of an owner's MeterConsent, signed from the ledger's typed data."""
    deadline = ledger.head_timestamp() + 600
    typed = ledger.consent_typed_data(meter.address, owner.address, kind, rated, deadline)
    assert recover_typed(typed, owner.sign_typed_data(full_message=typed).signature) \
        == owner.address
    return deadline, owner.sign_typed_data(full_message=typed).signature


def test_deploy_fixes_notice_duration_and_rating(ledger):
    addresses = ledger.addresses()
    assert ledger.withdrawal_notice() == NOTICE
    assert ledger.deal_duration() == DEAL_DURATION
    assert ledger.max_rated_power_w() == MAX_RATED_W
    assert ledger.deployed_at(addresses, NOTICE, DEAL_DURATION)
    assert ledger.deployed_at(addresses, NOTICE)
    assert not ledger.deployed_at(addresses, NOTICE, DEAL_DURATION + 1)
    assert not ledger.deployed_at(addresses, NOTICE + 1)
    # No dealDuration() there: an escrow of another build, not ours.
    assert not ledger.deployed_at({**addresses, "EnergyEscrow": addresses["EnergyToken"]}, NOTICE)


@pytest.mark.parametrize("value", [0, 2**64])
def test_deploy_refuses_values_the_contracts_cannot_hold(ledger, value):
    with pytest.raises(ValueError, match="deal duration"):
        ledger.deploy(NOTICE, value, MAX_RATED_W)


def test_enrollment_with_consent_and_without(ledger):
    owner, meter, operator_meter = Account.create(), Account.create(), Account.create()
    ledger.enroll_meter(meter.address, owner.address, CONSUMER, 500,
                        *consent(ledger, meter, owner, CONSUMER, 500))
    entry = ledger.meter_of(meter.address)
    assert (entry["owner"], entry["kind"], entry["rated_power_w"]) == (owner.address, CONSUMER,
                                                                        500)
    assert entry["last_reading_wh"] == 0 and entry["last_reading_at"] > 0
    # F3: the operator's own meter with a consent it signed itself.
    deadline, forged = consent(ledger, operator_meter, ledger.operator, CONSUMER, 500)
    with pytest.raises(ChainActionFailed, match="consent is not signed by the meter.s owner"):
        ledger.enroll_meter(operator_meter.address, owner.address, CONSUMER, 500, deadline,
                            forged)


def test_mint_batches_are_bounded(ledger):
    reading = sign_reading(Account.create(), ledger.reading_domain(), 1, 0, 1)
    with pytest.raises(ValueError, match="1 to"):
        ledger.mint_readings_async([])
    with pytest.raises(ValueError, match="1 to"):
        ledger.mint_readings_async([reading] * (MAX_MINT_BATCH + 1))


def test_a_refused_reading_does_not_sink_the_batch(ledger):
    stranger = Account.create()
    record = ledger.mint_readings_async(
        [sign_reading(stranger, ledger.reading_domain(), 5, 0, ledger.head_timestamp())])
    receipt = ledger.wait(record)
    events = ledger.token.events.ReadingRefused().process_receipt(receipt)
    assert [e["args"]["reason"] for e in events] == [1]  # not a producer: skipped, mined


def test_a_permit_sent_by_the_operator_approves_the_escrow(ledger):
    seller = Account.create()
    deadline = ledger.head_timestamp() + 600
    typed = ledger.permit_typed_data(seller.address, 1_234, deadline)
    signature = seller.sign_typed_data(full_message=typed).signature
    ledger.wait(ledger.submit_permit_async(seller.address, 1_234, deadline, signature))
    assert ledger.allowance(seller.address) == 1_234
    assert ledger.permit_typed_data(seller.address, 1, deadline)["message"]["nonce"] == 1
    with pytest.raises(ValueError, match="65 bytes"):
        ledger.submit_permit_async(seller.address, 1, deadline, b"\x00" * 64)


def test_a_seller_cancels_its_offer_with_its_own_transaction(ledger):
    seller, meter = Account.create(), Account.create()
    ledger.fund(seller.address, ETH)
    offer = {"seller": seller.address, "sellerMeter": meter.address, "energyWh": 10,
             "floorPriceWeiPerKWh": 10**15, "deadline": ledger.head_timestamp() + 600,
             "nonce": 3}
    digest = offer_hash(*ledger.offer_domain(), offer)
    assert not ledger.offer_used(digest) and ledger.deal_of_offer(digest) == 0
    ledger.wait(ledger.txm.send(seller, ledger.cancel_offer_tx(offer), "Cancel offer"))
    assert ledger.offer_used(digest) and ledger.deal_of_offer(digest) == 0


def test_a_producer_meter_mints_from_its_signed_reading(ledger):
    owner, meter = Account.create(), Account.create()
    ledger.enroll_meter(meter.address, owner.address, PRODUCER, 3_600,
                        *consent(ledger, meter, owner, PRODUCER, 3_600))
    start = ledger.meter_of(meter.address)["last_reading_at"]
    assert ledger.baseline_pending(meter.address)
    ledger.txm.backend.time_travel(start + 10)
    ledger.fund(Account.create().address, 1)  # a block at that time
    baseline = sign_reading(meter, ledger.reading_domain(), 0, 0, start + 10)
    ledger.wait(ledger.mint_readings_async([baseline]))  # the first reading only sets the counter
    assert not ledger.baseline_pending(meter.address)
    ledger.txm.backend.time_travel(start + 50)
    ledger.fund(Account.create().address, 1)
    reading = sign_reading(meter, ledger.reading_domain(), 500, 0, start + 50)
    ledger.wait(ledger.mint_readings_async([reading]))
    assert ledger.token_balance(owner.address) == 40  # 1 Wh a second, clamped; the rest later
    assert ledger.meter_of(meter.address)["last_reading_at"] == start + 50


def test_a_used_consent_a_bound_meter_and_its_release(ledger):
    """Review faults 4 and 7 as the market meets them: a consent enrolls once; a disenrolled
    meter stays its owner's until the owner signs releaseMeter (release_meter_tx)."""
    owner, crony, meter = Account.create(), Account.create(), Account.create()
    deadline, signature = consent(ledger, meter, owner, PRODUCER, 1_000)
    terms = {"meter": meter.address, "owner": owner.address, "kind": int(PRODUCER),
             "ratedPowerW": 1_000, "deadline": deadline}
    assert not ledger.consent_used(terms)
    ledger.enroll_meter(meter.address, owner.address, PRODUCER, 1_000, deadline, signature)
    assert ledger.consent_used(terms)
    with pytest.raises(ChainActionFailed, match="this consent has enrolled the meter once already"):
        ledger.enroll_meter(meter.address, owner.address, PRODUCER, 1_000, deadline, signature)
    ledger.disenroll_meter(meter.address)
    assert ledger.meter_of(meter.address)["owner"] == "0x" + "0" * 40
    assert ledger.bound_owner_of(meter.address) == owner.address
    with pytest.raises(ChainActionFailed, match="that owner must release it first"):
        ledger.enroll_meter(meter.address, crony.address, PRODUCER, 1_000,
                            *consent(ledger, meter, crony, PRODUCER, 1_000))
    ledger.fund(owner.address, ETH)  # the owner sends its own release
    ledger.wait(ledger.txm.send(owner, ledger.release_meter_tx(meter.address), "release"))
    assert ledger.bound_owner_of(meter.address) is None
    ledger.enroll_meter(meter.address, crony.address, PRODUCER, 1_000,
                        *consent(ledger, meter, crony, PRODUCER, 1_000))
    assert ledger.meter_of(meter.address)["owner"] == crony.address
    assert ledger.baseline_pending(meter.address)


def test_the_escrow_views_a_bid_reads_are_encoded_as_the_abi_says():
    """Ledger._escrow_view's selectors and output types are the artifact's."""
    from contracts import load_artifact
    from marketplace.ledger import _VIEWS

    found = [item for item in load_artifact("EnergyEscrow").abi if item.get("name") in _VIEWS]
    assert len(found) == len(_VIEWS)
    for item in found:
        selector, outputs = _VIEWS[item["name"]]
        inputs = ",".join(i["type"] for i in item["inputs"])
        assert selector == bytes(Web3.keccak(text=f"{item['name']}({inputs})")[:4])
        assert outputs == [o["type"] for o in item["outputs"]]
