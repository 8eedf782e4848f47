"""A node that forgot mined transactions (anvil SIGKILLed, restarted from its older state
file): the transaction manager's next sends are mined, the forgotten ones sent again."""

from __future__ import annotations

import pytest
from eth_account import Account

from geth_private import TxManager, TxStatus, backend_from_uri
from geth_private.anvil import find_anvil

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it")
ETH = 10**18


def test_sends_after_anvil_forgot_blocks_are_mined_and_the_forgotten_sent_again(tmp_path):
    backend = backend_from_uri("anvil://?interval=3600", tmp_path)
    backend.start()
    try:
        txm = TxManager(backend, resubmit_after=0.0)  # no wait before looking at the pool
        payer, payee = Account.create(), Account.create().address
        txm.transact(backend.faucet(), {"to": payer.address, "value": ETH, "gas": 21000},
                     "fund")
        backend.stop()  # the state file now holds the funding: what the crash goes back to
        backend.start()
        forgotten = txm.send(payer, {"to": payee, "value": 1, "gas": 21000}, "forgotten")
        txm.wait(forgotten)
        backend.kill()  # SIGKILL: the payment's block is lost
        backend.start()
        assert backend.w3.eth.get_transaction_count(payer.address) == 0
        # Signed with nonce 1 (this process counted the lost one): the node holds it unmined.
        later = txm.send(payer, {"to": payee, "value": 2, "gas": 21000}, "later")
        txm.wait(later, timeout=30)
        txm.poll()  # the forgotten one, sent again, is followed to its new receipt
        assert forgotten.status is TxStatus.MINED and later.status is TxStatus.MINED
        assert backend.w3.eth.get_balance(payee) == 3  # both paid, neither twice
        assert backend.w3.eth.get_transaction_receipt(forgotten.tx_hash)["status"] == 1
    finally:
        backend.stop()


def test_a_forgotten_nonce_this_process_never_signed_is_filled_and_nothing_paid_twice(
        tmp_path, caplog):
    backend = backend_from_uri("anvil://?interval=3600", tmp_path)
    backend.start()
    try:
        payer, payee = Account.create(), Account.create().address
        elsewhere = TxManager(backend)  # another worker sending from the same account
        elsewhere.transact(backend.faucet(), {"to": payer.address, "value": ETH,
                                              "gas": 21000}, "fund")
        backend.stop()
        backend.start()
        txm = TxManager(backend, resubmit_after=0.0)
        elsewhere.transact(payer, {"to": payee, "value": 1, "gas": 21000}, "theirs")
        backend.kill()
        backend.start()
        # This process counts the other's nonce (asked before the kill): it signs nonce 1.
        txm._nonces[payer.address] = 1
        later = txm.send(payer, {"to": payee, "value": 2, "gas": 21000}, "later")
        signed_as = later.tx_hash
        txm.wait(later, timeout=30)
        assert later.nonce == 1 and later.tx_hash == signed_as  # mined as signed
        assert "nonce 0 of" in caplog.text and "filled" in caplog.text
        txm.poll()
        assert backend.w3.eth.get_transaction_count(payer.address) == 2
        assert backend.w3.eth.get_balance(payee) == 2
    finally:
        backend.stop()
