"""A refusal of bytes the node already has is not a refusal (review4 of f53b51a): two workers
that read the operator's pending count together and do the same thing at start (seat a demo
participant: Ledger.fund) sign the very same bytes (same key, nonce, fees and call: signing is
deterministic). The second send is refused ("nonce too low": the first one's are mined), and
TxManager re-signs the same transfer under the node's next nonce, up to RENONCE_TRIES times:
the transfer is mined twice. The node holding the refused record's own hash says it was sent.

A real anvil (automine), two transaction managers over the faucet's key.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from geth_private.records import TxStatus

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it")


def test_the_same_transfer_signed_by_two_workers_is_mined_once(tmp_path):
    with backend_from_uri("anvil://", str(tmp_path)) as node:
        faucet, to = node.faucet(), Account.create().address
        first, second = TxManager(node), TxManager(node)
        counted = node.w3.eth.get_transaction_count(faucet.address, "pending")
        for worker in (first, second):  # both read the count and the fees at the same block
            worker._nonces[faucet.address] = counted
            worker._fees()
        tx = {"to": to, "value": 1_000, "gas": 21000}
        one = first.transact(faucet, tx, "Fund a participant")
        two = second.transact(faucet, tx, "Fund a participant")  # refused: mined already
        assert node.w3.eth.get_balance(to) == 1_000, "the transfer was mined twice"
        # The second worker follows the first one's transaction: the bytes it signed.
        assert two["transactionHash"] == one["transactionHash"]
        assert second.record(one["transactionHash"].to_0x_hex()).status == TxStatus.MINED
