"""The chain's side of a batch: positions as IntervalSettlement takes them, what a mined
batch settled or refused, read from its receipt by the ledger, and batches the chain forgot
(sent, or mined before it went back)."""

from __future__ import annotations

import logging
from typing import Any

from web3.exceptions import TransactionNotFound

from firmware_bridge.signing import SignedReading
from marketplace.intervals.orders import BUY, StandingOrders
from marketplace.intervals.store import IntervalStore
from marketplace.ledger import Ledger
from marketplace.positions import Batch, BuyPosition, SellPosition

log = logging.getLogger(__name__)

# Wall seconds a sent batch stays unknown to the node before it counts as forgotten: a
# worker's transaction manager sends again what it signed well within it (resubmit_after).
FORGOTTEN_AFTER_S = 45.0


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


def reopen_forgotten(istore: IntervalStore, ledger: Ledger, deepest: int = 16) -> list[int]:
    """Mined batches whose receipts the node no longer has (it went back: anvil restarted
    from an older state dump), newest first down to one it has: in flight again, their
    fills unsettled; the ids. Left mined, a seller's offers counted its burn as done while
    the chain held those tokens again, and a forgotten batch another process signed (or
    one this worker never sends again: no later send of its waits) was never mined again:
    its Wh counted settled but unpaid. Followed again, it goes again with its own bytes
    (unknown_to_node) or, past FORGOTTEN_AFTER_S, fails so its positions are rebuilt."""
    forgotten = []
    for batch in istore.newest_mined(deepest):
        try:
            ledger.w3.eth.get_transaction_receipt(batch["tx_hash"])
            break
        except TransactionNotFound:
            forgotten.append(batch["id"])
        except Exception:  # the node is away: nothing is known
            return []
    for batch_id in reversed(forgotten):
        log.warning("interval batch %s was mined and the chain forgot it (it went back): "
                    "followed again, its fills unsettled", batch_id)
        istore.reopen_batch(batch_id)
    return forgotten


def unknown_to_node(ledger: Ledger, tx_hash: str) -> bool:
    """Whether a sent batch's transaction is unknown to the node, and nobody here can send its
    bytes again (anvil restarted from an older state, or a worker died before handing it
    over). One this process signed and the node mined before it forgot is sent again instead
    (same hash: it is followed as before)."""
    record = ledger.txm.record(tx_hash)
    if record is not None and (record.status in ("queued", "pending")
                               or ledger.txm.send_forgotten(record)):
        return False
    try:
        ledger.w3.eth.get_transaction(tx_hash)
        return False  # in the pool or mined: its receipt comes
    except TransactionNotFound:
        return True
    except Exception:  # the node is away: it may know it once back
        return False
