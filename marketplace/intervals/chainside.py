"""The chain's side of a batch: positions as IntervalSettlement takes them, and what a mined
batch settled or refused, read from its receipt by the ledger."""

from __future__ import annotations

from typing import Any

from firmware_bridge.signing import SignedReading
from marketplace.intervals.orders import BUY, StandingOrders
from marketplace.ledger import Ledger
from marketplace.positions import Batch, BuyPosition, SellPosition


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
    and the accounts refused with their reasons (IntervalLedger.batch_outcome)."""
    return ledger.intervals.batch_outcome(tx_hash)
