"""Orders their owners cancelled on chain (cancelSellOrder/cancelBuyOrder sent from anywhere,
not only through DELETE /api/orders) end at the next boundary.

The contract's OrderCancelled events are read from a durable cursor (the store's cursors
table): one eth_getLogs per boundary over the blocks since, filtered by the contract and the
event's topic, whatever the number of active orders (a cancelledAt call per active order
would be 1,000 calls a boundary at 1,000 orders)."""

from __future__ import annotations

import logging

from marketplace.intervals.store import CANCELLED, IntervalStore
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)

CURSOR = "interval-order-cancels"  # the next block to read OrderCancelled from


def follow(istore: IntervalStore, ledger: Ledger) -> list[int] | None:
    """End the active orders cancelled on chain since the cursor; their ids (None: the chain
    could not be read, the cursor stays and the next boundary reads the same blocks)."""
    try:
        head = ledger.block_number()
        start = istore.db.cursor(CURSOR) or 0
        events = ledger.intervals.cancels(start, head) if start <= head else []
    except Exception as err:  # the chain is away: orders cancelled meanwhile still settle
        log.warning("on-chain cancels not read: %s", err)  # up to the contract's grace
        return None
    ended = []
    with istore.db.transaction():
        for event in events:
            row = istore.order_by_hash(event["hash"])
            if row is not None and row["owner"] == event["owner"] and \
                    istore.set_order_status(row["id"], CANCELLED):
                ended.append(row["id"])
                log.info("standing order %s of %s cancelled on chain", row["id"], row["owner"])
        istore.db.set_cursor(CURSOR, head + 1)
    return ended
