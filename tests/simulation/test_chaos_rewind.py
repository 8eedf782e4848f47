"""anvil killed loses the blocks since its last state dump: the market notices the rewind and
sends again what the chain forgot (a real anvil, its real state file, a real SIGKILL)."""

from __future__ import annotations

import logging

import pytest
from eth_account import Account

from geth_private.anvil import find_anvil
from marketplace.clock import SystemClock
from tests.common import wait_for
from tests.marketplace.common import ready

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it")

# A dump interval longer than the test: the state file holds what the test dumps by hand. The
# market's clock is the real one: readings are signed at its time and the restarted node's
# blocks carry real time, so a hand-moved clock would sign readings "in the future".
ANVIL = {"CHAIN_URI": "anvil://?interval=3600", "CLOCK": SystemClock(), "SOFT_CLOSE_S": 0}
AUCTION_S = 10
BOB = "0x00000000000000000000000000000000000000b0"


def active_on_chain(market, ledger):
    """The active deal once the chain holds it, or None."""
    def opened():
        deal = next((d for d in market.deals() if d["status"] == "active"), None)
        return deal if deal is not None and ledger.deal_count() == 1 else None

    return opened


# Found by this test: anvil keeps a transaction whose nonce lies past the ones it forgot in
# its pool without mining it, so the market's re-sent openDeal waited forever; the transaction
# manager now sends the forgotten ones again (or signs the waiting one with the nonce the node
# expects). With evm_revert (tests/marketplace/test_chain_follow.py) the node refused instead.
@pytest.mark.parametrize("app", [ANVIL], indirect=True)
def test_a_deal_lost_with_anvils_blocks_is_opened_again(runtime, caplog):
    people = ready(runtime)
    backend, market, ledger = runtime.backend, runtime.market, runtime.ledger
    listing = people["alice"].list(10, 1000, AUCTION_S)
    approval = runtime.txm.record(runtime.store.listing(listing["id"])["approval_tx"])
    wait_for(lambda: approval.status == "mined", what="the approval")
    # anvil writes its state file on the way out: this is the dump the crash goes back to.
    backend.stop()
    backend.start()
    dumped = ledger.block_number()
    people["bob"].bid(listing["id"], 3000)
    with caplog.at_level(logging.WARNING):
        deal = wait_for(active_on_chain(market, ledger), timeout=60,
                        what="the deal to open")
        assert ledger.deal_count() == 1 and ledger.block_number() > dumped
        backend.kill()  # SIGKILL: no dump of the blocks since
        backend.start()
        # Only the deal's absence is certain: the runtime's own sends (mints) may mine blocks
        # on the restarted node before this line reads its head.
        assert ledger.deal_count() == 0
        wait_for(lambda: f"deal {deal['id']} re-checked" in caplog.text, timeout=60,
                 what="the market to re-check the forgotten deal")
        again = wait_for(active_on_chain(market, ledger), timeout=60,
                         what="the deal opened again on the restarted node")
    assert again["id"] == deal["id"] and "chain went back" in caplog.text
    assert ledger.chain_deal(again["chain_deal_id"])["buyer"] == people["bob"].address
    assert ledger.chain_deal(again["chain_deal_id"])["started"]  # its baseline sent again


# Found by the chaos day with the chain kind: a batch mined and marked so, then forgotten by
# the restarted node, stayed 'mined' with its fills settled. Nothing sent it again unless a
# later transaction of its sender waited behind the gap (and only from the process that
# signed it; another worker's was filled with a transfer of nothing), so its Wh counted
# paid while the chain held them unpaid, and sellers' offers counted its burn as done (then
# their sells were cut: "only N Wh minted for it are burned"). The market's hand-moved
# clock stays put: no boundary runs meanwhile; the batch's transaction is a plain transfer
# (what the market follows of a batch is its transaction; its receipt says what settled).
@pytest.mark.parametrize("app", [{"CHAIN_URI": "anvil://?interval=3600"}], indirect=True)
def test_a_mined_batch_the_chain_forgot_is_followed_and_mined_again(runtime, caplog):
    backend, txm = runtime.backend, runtime.txm
    intervals = runtime.market.intervals
    istore = intervals.istore
    n = wait_for(istore.last_n, what="the market's first interval")
    order = istore.add_order(BOB, "buy", {"meter": BOB}, "0x01", "0xh1", 1.0)
    istore.set_order_status(order, "cancelled")  # its fill is all the market keeps of it
    istore.add_fill(n, BOB, "buy", order, 5, 10)
    (fill,) = [f for f in istore.fills(n) if f["address"] == BOB]
    istore.account_fill(fill["id"], 5, 5, 50)
    backend.stop()  # anvil writes its state file on the way out: the dump the crash goes to
    backend.start()
    record = txm.send(backend.faucet(), {"to": Account.create().address, "value": 1,
                                         "gas": 21000}, "a batch")
    txm.wait(record)
    position = {"account": BOB, "side": "buy", "fill_ids": [fill["id"]]}
    batch_id = istore.add_batch(n, {"positions": [position], "mints": []}, None, 0.0)
    istore.update_batch(batch_id, status="mined", tx_hash=record.tx_hash)
    istore.mark_settled([fill["id"]], batch_id)
    backend.kill()  # SIGKILL: the batch's block is gone
    backend.start()
    with caplog.at_level(logging.WARNING):
        intervals.batching.step(n + 1)  # the next boundary's batching looks first
        # Its fill counts unsettled again: the chain does not hold its Wh now.
        assert [f["id"] for f in istore.unsettled(BOB)] == [fill["id"]]
        assert "the chain forgot it" in caplog.text
        wait_for(lambda: next(b for b in istore.batches() if b["id"] == batch_id)["status"]
                 == "mined", timeout=60, what="the forgotten batch followed and mined again")
    assert backend.w3.eth.get_transaction_receipt(record.tx_hash)["status"] == 1
    # A plain transfer settles no position: the fill waits for a batch that does.
    assert [f["id"] for f in istore.unsettled(BOB)] == [fill["id"]]
