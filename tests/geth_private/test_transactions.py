"""Locally signed transactions on the embedded chain: nonces, mining off/on, refusals, reverts."""

from __future__ import annotations

import json
import threading

import pytest
from eth_account import Account

from geth_private import (
    TransactionRejected,
    TransactionReverted,
    TxStatus,
    backend_from_uri,
)
from geth_private.errors import ChainError

ETH = 10**18


@pytest.fixture
def funded(txm, chain):
    account = Account.create()
    txm.transact(chain.faucet(), {"to": account.address, "value": 5 * ETH, "gas": 21000}, "fund")
    return account


def test_unknown_uri_is_refused():
    with pytest.raises(ChainError, match="unsupported chain URI"):
        backend_from_uri("carrier-pigeon://")


def test_transfers_are_signed_locally_and_mined(txm, chain, funded):
    other = Account.create().address
    receipt = txm.transact(funded, {"to": other, "value": ETH, "gas": 21000}, "pay")
    assert receipt["status"] == 1
    assert chain.w3.eth.get_balance(other) == ETH
    assert txm.recent(funded.address)[0].status == "mined"


def test_status_is_an_enum_that_reads_as_its_string(txm, funded):
    record = txm.send(funded, {"to": Account.create().address, "value": 1, "gas": 21000}, "pay")
    txm.wait(record)
    assert record.status is TxStatus.MINED
    assert json.loads(json.dumps(record.public()))["status"] == "mined"


def test_nonces_stay_in_order_across_threads(txm, chain, funded):
    other = Account.create().address

    def send_some():
        for _ in range(10):
            txm.transact(funded, {"to": other, "value": 1, "gas": 21000}, "tick")

    threads = [threading.Thread(target=send_some) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert chain.w3.eth.get_balance(other) == 40
    assert chain.w3.eth.get_transaction_count(funded.address) == 40


def test_mining_off_keeps_transactions_pending_until_mining_on(txm, chain, funded):
    other = Account.create().address
    txm.set_mining(False)
    head = chain.w3.eth.block_number
    records = [txm.send(funded, {"to": other, "value": 7, "gas": 21000}, f"t{i}") for i in range(3)]
    # The embedded node holds one per sender; the app holds the rest, all shown as pending.
    assert [r.status for r in records] == ["pending", "queued", "queued"]
    assert len(txm.pending(funded.address)) == 3
    assert chain.w3.eth.block_number == head and chain.w3.eth.get_balance(other) == 0
    txm.set_mining(True)
    assert [r.status for r in records] == ["mined"] * 3
    assert txm.pending() == [] and chain.w3.eth.get_balance(other) == 21


def test_a_refused_transaction_does_not_burn_a_nonce(txm, chain, funded):
    other = Account.create().address
    with pytest.raises(TransactionRejected, match="refused"):
        txm.send(funded, {"to": other, "value": 100 * ETH, "gas": 21000}, "too much")
    assert txm.transact(funded, {"to": other, "value": 1, "gas": 21000}, "ok")["status"] == 1


def test_a_reverted_transaction_reports_its_reason(txm, chain, funded):
    # Init code that reverts with the 4-byte custom error 0xdeadbeef.
    init = "0x63deadbeef60e01b60005260046000fd"
    decoded = []
    txm.decode_revert = lambda data: decoded.append(data) or "Custom(0xdeadbeef)"
    record = txm.send(funded, {"data": init, "gas": 100_000}, "deploy a reverter")
    expected = r"deploy a reverter reverted: Custom\(0xdeadbeef\)"
    with pytest.raises(TransactionReverted, match=expected):
        txm.wait(record)
    assert decoded == [bytes.fromhex("deadbeef")]


def test_gas_must_be_fixed(txm, funded):
    with pytest.raises(ValueError, match="fixed gas limit"):
        txm.send(funded, {"to": funded.address, "value": 1}, "no gas")
