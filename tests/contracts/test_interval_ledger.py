"""marketplace.ledger_intervals: IntervalLedger deployed by Ledger.deploy, settling a batch
end to end on the embedded chain and on anvil's London EVM (the London artifact set)."""

from __future__ import annotations

import pytest

from firmware_bridge.signing import sign_reading
from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from marketplace.ledger import Ledger
from marketplace.ledger_intervals import settle_gas
from marketplace.positions import Batch, BuyPosition

from .common import (
    COMMUNITY,
    COMMUNITY_DEPOSIT,
    DEAL_DURATION,
    FILL_PRICE,
    LEDGER_WALL_S,
    MAX_RATED_W,
    NOTICE,
    later,
    ledger_community,
)

BACKENDS = ["embedded://", pytest.param("anvil://?hardfork=london", marks=pytest.mark.skipif(
    find_anvil() is None, reason="anvil not installed: `npm ci` installs @foundry-rs/anvil"))]


@pytest.mark.parametrize("uri", BACKENDS)
def test_a_batch_settles_through_the_interval_ledger(tmp_path, uri):
    with backend_from_uri(uri, str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        addresses = ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=900,
                                  interval_wall_s=LEDGER_WALL_S, anyone_after_s=600,
                                  max_line_loss_bps=250)
        intervals = ledger.intervals
        assert set(addresses) == {"EnergyToken", "EnergyEscrow", "IntervalSettlement"}
        assert ledger.deployed_at(addresses, NOTICE, DEAL_DURATION)
        assert intervals.parameters() == {"anyone_after_s": 600, "interval_s": 900,
                                          "interval_wall_s": LEDGER_WALL_S,
                                          "max_line_loss_bps": 250}
        assert all(ledger.roles_of(ledger.operator.address).values())
        community = ledger_community(node, ledger)
        buyer, seller, buyer_meter = community.buyer, community.seller, community.buyer_meter
        buy, batch = community.buy, community.four_intervals()
        (bought,), (sold,) = batch.buys, batch.sells
        assert intervals.order_signer("sell", sold.order, sold.order_sig) == seller.address
        assert intervals.order_signer("buy", buy, bought.order_sig) == buyer.address
        n = batch.through_interval - 3
        assert settle_gas(batch) > 0
        receipt = ledger.wait(intervals.settle_async(batch))
        events = intervals.events(receipt["blockNumber"], receipt["blockNumber"])
        assert [e["event"] for e in events] == [
            "PositionSettled", "PositionSettled", "BatchSettled"], events
        assert ledger.escrow_free(buyer.address, COMMUNITY) == COMMUNITY_DEPOSIT - FILL_PRICE
        assert ledger.owed_to(seller.address) == FILL_PRICE
        assert ledger.token_balance(seller.address) == 200  # 1,200 minted, 1,000 burned
        assert intervals.position_of(buyer.address, buyer_meter.address)["last_wh"] == 5_000
        assert intervals.pool_wei() == 0
        # The buyer cancels its order with its own transaction: a position closing over two
        # intervals (30 block seconds) after the cancel is refused.
        cancel = intervals.cancel_order_tx("buy", buy)
        ledger.wait(ledger.txm.send(buyer, cancel, "cancel"))
        assert intervals.cancelled(intervals.order_hash("buy", buy), buyer.address)
        assert intervals.cancelled_at(intervals.order_hash("buy", buy)) > 0
        now = later(node, ledger, 31)
        again = Batch(n + 4, buys=[BuyPosition(
            buy, b"", sign_reading(buyer_meter, ledger.reading_domain(), 5_100, 0, now), n + 4,
            n + 4, 1, 100, FILL_PRICE // 10)])
        receipt = ledger.wait(intervals.settle_async(again))
        (refused,) = [e for e in intervals.events(receipt["blockNumber"])
                      if e["event"] == "PositionRefused"]
        assert refused["args"]["reason_name"] == "CANCELLED"
        # A signed batch anyone may send after the window (the operator's signature).
        signed = intervals.sign(again)
        assert signed.operator_sig and signed.positions_hash() == again.positions_hash()


def test_a_batch_settles_in_the_second_interval_of_a_day(tmp_path):
    """Regression: the four intervals before the current one used to reach back over the
    day's start there, and a position over two days is refused (BAD_INTERVALS). CI ran the
    test above in the 45 s of each 24 min (a day of 15 s intervals) where that happens."""
    with backend_from_uri("embedded://", str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=900,
                      interval_wall_s=LEDGER_WALL_S, anyone_after_s=600, max_line_loss_bps=250)
        community = ledger_community(node, ledger, day_start=True)
        assert community.now // LEDGER_WALL_S % 96 == 1  # the day's second interval
        batch = community.four_intervals()
        receipt = ledger.wait(ledger.intervals.settle_async(batch))
        events = ledger.intervals.events(receipt["blockNumber"], receipt["blockNumber"])
        assert [e["event"] for e in events] == [
            "PositionSettled", "PositionSettled", "BatchSettled"], events
