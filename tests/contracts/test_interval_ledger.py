"""marketplace.ledger_intervals: IntervalLedger deployed by Ledger.deploy, settling a batch
end to end on the embedded chain and on anvil's London EVM (the London artifact set)."""

from __future__ import annotations

import pytest
from eth_account import Account

from contracts.bindings import sign_buy_order, sign_sell_order
from firmware_bridge.signing import sign_reading
from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from marketplace.contract_enums import EscrowMarket
from marketplace.ledger import CONSUMER, PRODUCER, Ledger
from marketplace.ledger_intervals import settle_gas
from marketplace.positions import Batch, BuyPosition, SellPosition

from .common import DEAL_DURATION, MAX_RATED_W, NOTICE

ETH = 10**18
PRICE = 2 * 10**15
BACKENDS = ["embedded://", pytest.param("anvil://?hardfork=london", marks=pytest.mark.skipif(
    find_anvil() is None, reason="anvil not installed: `npm ci` installs @foundry-rs/anvil"))]


def enroll(ledger, meter, owner, kind, rated):
    deadline = ledger.head_timestamp() + 600
    typed = ledger.consent_typed_data(meter.address, owner.address, kind, rated, deadline)
    signature = owner.sign_typed_data(full_message=typed).signature
    ledger.enroll_meter(meter.address, owner.address, kind, rated, deadline, signature)


def later(node, ledger, seconds):
    node.time_travel(ledger.head_timestamp() + seconds)
    node.mine()
    return ledger.head_timestamp()


@pytest.mark.parametrize("uri", BACKENDS)
def test_a_batch_settles_through_the_interval_ledger(tmp_path, uri):
    with backend_from_uri(uri, str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        addresses = ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=900,
                                  interval_wall_s=15, anyone_after_s=600,
                                  max_line_loss_bps=250)
        intervals = ledger.intervals
        assert set(addresses) == {"EnergyToken", "EnergyEscrow", "IntervalSettlement"}
        assert ledger.deployed_at(addresses, NOTICE, DEAL_DURATION)
        assert intervals.parameters() == {"anyone_after_s": 600, "interval_s": 900,
                                          "interval_wall_s": 15, "max_line_loss_bps": 250}
        assert all(ledger.roles_of(ledger.operator.address).values())
        seller, buyer, seller_meter, buyer_meter = (Account.create() for _ in range(4))
        ledger.fund(buyer.address, ETH)
        ledger.fund(seller.address, ETH)
        enroll(ledger, seller_meter, seller, PRODUCER, 100_000)
        enroll(ledger, buyer_meter, buyer, CONSUMER, 500)
        deposit = ledger.user_tx("EnergyEscrow", "deposit", [EscrowMarket.COMMUNITY], ETH // 10)
        ledger.wait(ledger.txm.send(buyer, deposit, "deposit"))
        domain, readings = intervals.domain(), ledger.reading_domain()
        start = later(node, ledger, 10)
        ledger.wait(ledger.mint_readings_async([sign_reading(seller_meter, readings, 0, 0,
                                                             start)]))
        now = later(node, ledger, 3600)
        sell = {"seller": seller.address, "meter": seller_meter.address,
                "floorWeiPerKWh": PRICE // 2, "maxWhPerInterval": 0, "reserveWh": 0,
                "expiry": now + 86_400, "nonce": 1}
        buy = {"buyer": buyer.address, "meter": buyer_meter.address, "capWeiPerKWh": PRICE,
               "maxWhPerInterval": 500, "expectedWh": 100, "dailyBudgetWei": ETH,
               "expiry": now + 86_400, "nonce": 2}
        sell_sig = sign_sell_order(seller, sell, domain)
        buy_sig = sign_buy_order(buyer, buy, domain)
        assert intervals.order_signer("sell", sell, sell_sig) == seller.address
        assert intervals.order_signer("buy", buy, buy_sig) == buyer.address
        n = now // 15 - 4  # four intervals of 15 block seconds
        fill = {"from_interval": n, "to_interval": n + 3, "filled_intervals": 4, "wh": 1_000,
                "wei": PRICE}
        batch = Batch(n + 3, buys=[BuyPosition(
            buy, buy_sig, sign_reading(buyer_meter, readings, 5_000, 0, now),
            baseline=sign_reading(buyer_meter, readings, 4_000, 0, now - 60), **fill)],
            sells=[SellPosition(
                sell, sell_sig, sign_reading(seller_meter, readings, 1_200, 1_000, now),
                baseline=sign_reading(seller_meter, readings, 0, 0, now - 60), **fill)])
        assert settle_gas(batch) > 0
        receipt = ledger.wait(intervals.settle_async(batch))
        events = intervals.events(receipt["blockNumber"], receipt["blockNumber"])
        assert [e["event"] for e in events] == [
            "PositionSettled", "PositionSettled", "BatchSettled"], events
        assert ledger.escrow_free(buyer.address, EscrowMarket.COMMUNITY) == ETH // 10 - PRICE
        assert ledger.owed_to(seller.address) == PRICE
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
            buy, b"", sign_reading(buyer_meter, readings, 5_100, 0, now), n + 4, n + 4, 1,
            100, PRICE // 10)])
        receipt = ledger.wait(intervals.settle_async(again))
        (refused,) = [e for e in intervals.events(receipt["blockNumber"])
                      if e["event"] == "PositionRefused"]
        assert refused["args"]["reason_name"] == "CANCELLED"
        # A signed batch anyone may send after the window (the operator's signature).
        signed = intervals.sign(again)
        assert signed.operator_sig and signed.positions_hash() == again.positions_hash()
