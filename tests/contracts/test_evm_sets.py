"""One artifact set per EVM version: picked from the node's headers, fresh, and run on anvil."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from eth_account import Account

from contracts import EVM_VERSIONS, UnsupportedEvm, load_artifact, sources_sha256
from contracts.bindings import offer_hash, sign_bid, sign_offer
from contracts.evm import evm_version_of
from firmware_bridge.signing import sign_reading
from geth_private import TransactionReverted, TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from marketplace.contract_enums import EscrowMarket
from marketplace.ledger import CONSUMER, PRODUCER, Ledger

from .common import DEAL_DURATION, MAX_RATED_W, NOTICE

NAMES = ("EnergyToken", "EnergyEscrow", "IntervalSettlement")
PUSH0, MCOPY = 0x5F, 0x5E
# solc's CBOR metadata trailer (ipfs hash, solc version): data, not code, so never walked.
METADATA = re.compile(rb"\xa2\x64ipfs\x58\x22.{34}\x64solc\x43...\x00\x33", re.DOTALL)
ETH = 10**18

needs_anvil = pytest.mark.skipif(
    find_anvil() is None, reason="anvil not installed: `npm ci` installs @foundry-rs/anvil"
)

# -- picking a set from what the node reports ------------------------------------------------

LONDON_HEADER = {"number": 7, "baseFeePerGas": 875_000_000, "gasLimit": 30_000_000}
CANCUN_HEADER = {
    **LONDON_HEADER, "blobGasUsed": 0, "excessBlobGas": 0, "parentBeaconBlockRoot": "0x" + "00" * 32
}
PRAGUE_HEADER = {**CANCUN_HEADER, "requestsHash": "0x" + "e3" * 32}


@pytest.mark.parametrize(
    ("header", "expected"),
    [(LONDON_HEADER, "london"), (CANCUN_HEADER, "cancun"), (PRAGUE_HEADER, "prague")],
    ids=["london", "cancun", "prague"],
)
def test_set_is_picked_from_header_fields(header, expected):
    assert evm_version_of(header) == expected


def test_absent_and_null_fields_count_as_missing():
    assert evm_version_of({**CANCUN_HEADER, "requestsHash": None}) == "cancun"
    # anvil's London genesis block: blob fields, but no beacon root, so not Cancun.
    assert evm_version_of({**LONDON_HEADER, "blobGasUsed": 0, "excessBlobGas": 0}) == "london"
    with pytest.raises(UnsupportedEvm, match="older than London"):
        evm_version_of({"number": 1, "gasLimit": 8_000_000})


def test_unknown_set_is_refused():
    with pytest.raises(UnsupportedEvm, match="london, cancun, prague"):
        load_artifact("EnergyToken", "osaka")


# -- the sets themselves -----------------------------------------------------------------------


def opcodes(bytecode: str) -> Iterator[int]:
    """Every opcode of creation bytecode, PUSH data skipped, metadata trailers left out."""
    for segment in METADATA.split(bytes.fromhex(bytecode.removeprefix("0x"))):
        at = 0
        while at < len(segment):
            op = segment[at]
            yield op
            at += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)  # PUSH1..PUSH32 carry 1..32 bytes


@pytest.mark.parametrize("evm", EVM_VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_every_set_names_its_build(name, evm):
    artifact = load_artifact(name, evm)
    assert artifact.evm_version == evm and artifact.compiler.startswith("0.8.37+")
    assert artifact.openzeppelin.startswith("5.")
    assert artifact.sources_sha256 == sources_sha256()
    assert artifact.abi == load_artifact(name).abi  # one source: one ABI for every set


@pytest.mark.parametrize("name", NAMES)
def test_london_set_has_no_shanghai_or_cancun_opcodes(name):
    london = list(opcodes(load_artifact(name, "london").bytecode))
    assert PUSH0 not in london and MCOPY not in london
    # The walk does see them where they are: the Cancun set uses both.
    cancun = list(opcodes(load_artifact(name, "cancun").bytecode))
    assert PUSH0 in cancun and MCOPY in cancun


@pytest.mark.parametrize("evm", EVM_VERSIONS)
def test_committed_set_is_what_the_sources_compile_to(compile_check, evm):
    """Fails when a set differs from compiling contracts/src now: run `npm run compile`."""
    stale = json.loads(compile_check.stdout.splitlines()[0])
    assert stale[evm] == [], compile_check.stderr


# -- each set deployed and exercised on anvil -------------------------------------------------


@needs_anvil
@pytest.mark.parametrize("hardfork", EVM_VERSIONS)
def test_set_deploys_and_trades_on_anvil(tmp_path, hardfork):
    """The ledger picks the node's set; a mint, a delivered deal and a withdrawal go through."""
    with backend_from_uri(f"anvil://?hardfork={hardfork}", str(tmp_path)) as node:
        assert evm_version_of(node.w3.eth.get_block("latest")) == hardfork
        ledger = Ledger(TxManager(node), node.faucet())
        ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W)
        seller, buyer, seller_meter, buyer_meter = (Account.create() for _ in range(4))
        for account in (seller, buyer):  # meters need no Ether: the operator sends for them
            ledger.fund(account.address, ETH)
        deadline = ledger.head_timestamp() + 600
        for meter, owner, kind, rated in ((seller_meter, seller, PRODUCER, 3_000),
                                          (buyer_meter, buyer, CONSUMER, 500)):
            typed = ledger.consent_typed_data(meter.address, owner.address, kind, rated, deadline)
            consent = owner.sign_typed_data(full_message=typed).signature
            ledger.enroll_meter(meter.address, owner.address, kind, rated, deadline, consent)
        domain = ledger.reading_domain()
        node.time_travel(ledger.head_timestamp() + 10)
        node.mine()
        baseline = sign_reading(seller_meter, domain, 0, 0, ledger.head_timestamp())
        ledger.wait(ledger.mint_readings_async([baseline]))  # an enrollment's first reading
        node.time_travel(ledger.head_timestamp() + 3600)
        node.mine()
        reading = sign_reading(seller_meter, domain, 2_000, 0, ledger.head_timestamp())
        ledger.wait(ledger.mint_readings_async([reading]))
        assert ledger.token_balance(seller.address) == 2_000
        assert ledger.meter_of(seller_meter.address)["last_reading_wh"] == 2_000
        # The seller and the buyer sign their own transactions, offer and bid.
        approve = ledger.user_tx("EnergyToken", "approve", [ledger.escrow.address, 1_000])
        ledger.wait(ledger.txm.send(seller, approve, "approve"))
        deposit = ledger.user_tx("EnergyEscrow", "deposit", [EscrowMarket.LOTS], ETH // 10)
        ledger.wait(ledger.txm.send(buyer, deposit, "deposit"))
        now = ledger.head_timestamp()
        offer = {"seller": seller.address, "sellerMeter": seller_meter.address,
                 "energyWh": 1_000, "floorPriceWeiPerKWh": 10**14, "deadline": now + 3600,
                 "nonce": 1}
        bid = {"offer": offer_hash(*ledger.offer_domain(), offer), "buyer": buyer.address,
               "buyerMeter": buyer_meter.address, "priceWeiPerKWh": 10**15, "maxWh": 1_000,
               "nonce": 1, "expiry": now + 3600}
        record = ledger.open_deal_async(offer, sign_offer(seller, *ledger.offer_domain(), offer),
                                        bid, sign_bid(buyer, *ledger.bid_domain(), bid), 1_000)
        ledger.wait(record)
        deal_id = ledger.deal_id_from(record)
        assert ledger.deal_of_offer(bid["offer"]) == deal_id and ledger.offer_used(bid["offer"])
        for delivered in (0, 1_000):  # the baseline, then the whole lot
            at = ledger.head_timestamp()
            ledger.wait(ledger.report_delivery_async(
                deal_id, sign_reading(seller_meter, domain, 2_000, 50 + delivered, at),
                sign_reading(buyer_meter, domain, 70 + delivered, 0, at)))
        deal = ledger.chain_deal(deal_id)
        assert (deal["deliveredWh"], deal["paidWei"]) == (1_000, 10**15)
        assert deal["expiresAt"] - deal["openedAt"] == DEAL_DURATION
        assert ledger.total_supply() == 1_000  # the delivered Wh were burnt
        request = ledger.user_tx("EnergyEscrow", "requestWithdrawal",
                                 [EscrowMarket.LOTS, ledger.escrow_free(buyer.address)])
        ledger.wait(ledger.txm.send(buyer, request, "request a withdrawal"))
        pending = ledger.withdrawal_of(buyer.address)
        node.time_travel(pending["available_at"])
        node.mine()
        complete = ledger.user_tx("EnergyEscrow", "completeWithdrawal", [EscrowMarket.LOTS])
        ledger.wait(ledger.txm.send(buyer, complete, "complete the withdrawal"))
        assert ledger.escrow_free(buyer.address) == 0
        assert ledger.eth_balance(ledger.escrow.address) == 0


@needs_anvil
def test_prague_set_fails_on_a_london_node(tmp_path):
    """Why the sets exist: PUSH0 halts a London EVM, so the deploy reverts with all its gas."""
    with backend_from_uri("anvil://?hardfork=london", str(tmp_path)) as node:
        artifact = load_artifact("EnergyToken", "prague")
        data = node.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(
            node.faucet().address, MAX_RATED_W
        ).data_in_transaction
        txm = TxManager(node)
        with pytest.raises(TransactionReverted):
            txm.transact(node.faucet(), {"data": data, "gas": 5_000_000}, "Deploy EnergyToken")
