"""Transactions their owners signed elsewhere: decoded, queued at once, sent by the loop."""

from __future__ import annotations

import pytest
from eth_account import Account

from geth_private import TxStatus
from geth_private.signed import BadSignedTransaction, decode_signed

ETH = 10**18


@pytest.fixture
def owner(txm, chain):
    account = Account.create()
    txm.transact(chain.faucet(), {"to": account.address, "value": 5 * ETH, "gas": 21000}, "fund")
    return account


def signed(txm, owner, to, value, **extra):
    fields = txm.suggest(owner.address, {"to": to, "value": value, "gas": 21000, **extra})
    return owner.sign_transaction(fields)


def test_decoding_reads_signer_and_fields_from_the_bytes_alone(txm, owner):
    to = Account.create().address
    tx = signed(txm, owner, to, 7)
    call = decode_signed("0x" + bytes(tx.raw_transaction).hex())
    assert (call.sender, call.to, call.value, call.gas) == (owner.address, to, 7, 21000)
    assert call.tx_hash == "0x" + bytes(tx.hash).hex()
    assert call.chain_id == txm.chain_id()


@pytest.mark.parametrize("junk", ["", "0x", "0xzz", "0x" + "ab" * 40, "0x02c0"])
def test_junk_is_refused_with_a_sentence(junk):
    with pytest.raises(BadSignedTransaction, match="signed transaction"):
        decode_signed(junk)


def test_a_submission_answers_with_its_hash_before_the_node_sees_it(txm, chain, owner):
    to = Account.create().address
    tx = signed(txm, owner, to, ETH)
    record = txm.submit_signed(bytes(tx.raw_transaction), "pay")
    assert record.status == TxStatus.QUEUED and record.tx_hash == "0x" + bytes(tx.hash).hex()
    assert chain.w3.eth.get_balance(to) == 0  # nothing sent yet: the loop sends
    txm.poll()
    txm.wait(record)
    assert chain.w3.eth.get_balance(to) == ETH


def test_the_same_bytes_twice_are_one_record(txm, owner):
    tx = signed(txm, owner, Account.create().address, 1)
    first = txm.submit_signed(bytes(tx.raw_transaction), "pay")
    assert txm.submit_signed(bytes(tx.raw_transaction), "pay again") is first


def test_suggested_nonces_count_what_is_queued_and_go_in_order(txm, chain, owner):
    chain.set_mining(False)
    to = Account.create().address
    records = []
    for _ in range(3):
        tx = signed(txm, owner, to, 1)
        records.append(txm.submit_signed(bytes(tx.raw_transaction), "pay"))
    assert [r.nonce for r in records] == [0, 1, 2]
    for _ in range(4):  # the embedded node holds one pending transaction per sender
        txm.poll()
        chain.mine(1)
    txm.poll()
    assert [r.status for r in records] == [TxStatus.MINED] * 3
    assert chain.w3.eth.get_balance(to) == 3


def test_a_refusal_is_reported_on_the_record(txm, owner):
    heard = []
    txm.subscribe(heard.append)
    tx = signed(txm, owner, Account.create().address, 10**30)  # more than it has
    record = txm.submit_signed(bytes(tx.raw_transaction), "too much")
    txm.poll()
    assert record.status == TxStatus.FAILED and record.error
    assert heard[-1] is record


def test_after_holds_a_transaction_until_the_other_has_a_receipt(txm, chain, owner):
    meter = Account.create()
    first = txm.send(chain.faucet(), {"to": meter.address, "value": ETH, "gas": 21000}, "first")
    chain.set_mining(False)
    second = txm.send(chain.faucet(), {"to": meter.address, "value": 1, "gas": 21000}, "second")
    tx = signed(txm, owner, Account.create().address, 1)
    record = txm.submit_signed(bytes(tx.raw_transaction), "after", after=second)
    txm.poll()
    assert record.status == TxStatus.QUEUED and first.status == TxStatus.MINED
    chain.mine(1)
    txm.poll()  # the second got its receipt in this pass: the held one goes in the next
    txm.poll()
    chain.mine(1)
    txm.poll()
    assert second.status == TxStatus.MINED and record.status == TxStatus.MINED


def test_an_owners_transaction_waits_while_the_node_is_away(txm, chain, owner, monkeypatch):
    """Nobody here can sign it again: a node that does not answer (restarting, unreachable)
    leaves it queued, not failed, and it goes once the node is back."""
    to = Account.create().address
    record = txm.submit_signed(bytes(signed(txm, owner, to, 7).raw_transaction), "pay")
    assert record.status == TxStatus.QUEUED

    def away(*args, **kwargs):
        raise ConnectionError("connection refused")

    with monkeypatch.context() as node:
        for call in ("get_block_number", "send_raw_transaction", "get_transaction_count"):
            node.setattr(txm.w3.eth, call, away)
        txm.poll()
        assert record.status == TxStatus.QUEUED and record.error is None
    txm.wait(record, timeout=10)
    assert record.status == TxStatus.MINED and chain.w3.eth.get_balance(to) == 7


def test_a_poll_returns_once_another_threads_poll_has_handed_the_outbox_on(txm, chain, owner):
    """Two pollers (the runtime's loop and a request's, e.g. 'mine a block now'): the one that
    finds the outbox emptied by the other waits until the other has handed it to the node, so
    a block mined right after holds it (test_mining_stop_start_and_send_ether hung without)."""
    import threading

    chain.set_mining(False)
    record = txm.submit_signed(bytes(signed(txm, owner, Account.create().address, 1)
                                     .raw_transaction), "pay")
    inside, release = threading.Event(), threading.Event()
    answers = txm._node_answers

    def slow_answers():  # the loop's poll, held after it took the outbox
        if threading.current_thread().name == "loop":
            inside.set()
            release.wait(10)
        return answers()

    txm._node_answers = slow_answers
    loop = threading.Thread(target=txm.poll, name="loop")
    loop.start()
    try:
        assert inside.wait(10)
        timer = threading.Timer(0.3, release.set)
        timer.start()
        txm.poll()  # the request's
        assert record.status == TxStatus.PENDING  # handed on by the loop's, waited for
    finally:
        release.set()
        loop.join(10)
        chain.set_mining(True)
