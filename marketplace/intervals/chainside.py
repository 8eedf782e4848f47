"""The chain's side of a batch: positions as IntervalSettlement takes them, and what a mined
batch settled or refused, read from its receipt."""

from __future__ import annotations

from typing import Any

from web3.logs import DISCARD

from firmware_bridge.signing import SignedReading
from geth_private.records import TxStatus
from marketplace.intervals.orders import BUY, SELL, StandingOrders
from marketplace.ledger import Ledger
from marketplace.ledger_intervals import REASONS
from marketplace.positions import Batch, BuyPosition, SellPosition

SIDES = {1: BUY, 2: SELL}  # IntervalSettlement's side numbers


def batch_of(orders: StandingOrders, through_n: int, positions: list[dict[str, Any]],
             mints: list[dict[str, Any]]) -> Batch:
    """The Batch of positions and mint readings (as Batching keeps them in JSON), sent by
    the operator."""
    buys, sells = [], []
    for p in positions:
        row = orders.istore.order(p["order_id"])
        made = (BuyPosition if p["side"] == BUY else SellPosition)(
            order=orders.typed_order(row), order_sig=bytes.fromhex(p["order_sig"][2:] or ""),
            closing=SignedReading.from_json(p["closing"]),
            from_interval=p["from_interval"], to_interval=p["to_interval"],
            filled_intervals=p["filled_intervals"], wh=p["wh"], wei=int(p["wei"]),
            baseline=None if p["baseline"] is None else SignedReading.from_json(p["baseline"]))
        (buys if p["side"] == BUY else sells).append(made)
    return Batch(through_n, buys, sells, [SignedReading.from_json(r) for r in mints])


def outcome(ledger: Ledger, tx_hash: str) -> dict[str, Any] | None:
    """A sent batch: None while pending; else its status, the (account, side) pairs settled
    and the accounts refused with their reasons."""
    record = ledger.txm.record(tx_hash)
    if record is not None and record.status in (TxStatus.QUEUED, TxStatus.PENDING):
        return None
    if record is not None and record.status == TxStatus.FAILED:
        return {"status": "failed", "error": str(record.error)[:500]}
    try:
        receipt = ledger.w3.eth.get_transaction_receipt(tx_hash)
    except Exception:  # not mined yet (a record this worker did not send, after a restart)
        return None
    if receipt["status"] != 1:
        return {"status": "failed", "error": "the batch reverted"}
    settlement = ledger.intervals.contract
    settled = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?"))
               for e in settlement.events.PositionSettled().process_receipt(receipt,
                                                                            errors=DISCARD)}
    refused = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?")):
               REASONS.get(e["args"]["reason"], e["args"]["reason"])
               for e in settlement.events.PositionRefused().process_receipt(receipt,
                                                                           errors=DISCARD)}
    return {"status": "mined", "settled": settled, "refused": refused,
            "gas_used": int(receipt["gasUsed"])}
