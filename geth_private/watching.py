"""Hashes a wallet reports it sent itself: checked against the node, bounded and let go.

The portal never held these bytes, so the hash alone proves nothing: whoever reports it must
be the sender the node names, a session may follow only a few hashes the node has not seen,
and one the node never sees (or that another transaction replaced) is dropped after a while.
"""

from __future__ import annotations

import time
from typing import Any

from eth_utils import to_checksum_address
from web3.exceptions import TransactionNotFound

from geth_private.errors import ChainError
from geth_private.records import TxRecord

UNSEEN_MAX = 8  # hashes one sender may follow that the node has not seen yet
UNSEEN_S = 180.0  # a followed hash the node has not seen by then is dropped


class WatchRefused(ChainError, ValueError):
    """A reported hash that is not the reporter's to follow (another sender, too many)."""


def seen_by_node(w3: Any, tx_hash: str) -> dict[str, Any] | None:
    """The transaction as the node knows it (pending or mined), or None."""
    try:
        return dict(w3.eth.get_transaction(tx_hash))
    except TransactionNotFound:
        return None


def known_to_node(w3: Any, tx_hash: str) -> bool:
    """Whether the node knows a transaction by its own hash, pending or mined (False when
    the node is away: nothing is known)."""
    try:
        if seen_by_node(w3, tx_hash) is not None:
            return True
        w3.eth.get_transaction_receipt(tx_hash)
        return True
    except TransactionNotFound:
        return False
    except Exception:  # the node is away
        return False


def check_report(seen: dict[str, Any] | None, sender: str, unseen: int) -> None:
    """Refuse (WatchRefused) a hash another account sent, or one unseen hash too many."""
    if seen is not None and to_checksum_address(seen["from"]) != sender:
        raise WatchRefused(f"that transaction was sent by {to_checksum_address(seen['from'])}, "
                           f"not by you ({sender})")
    if seen is None and unseen >= UNSEEN_MAX:
        raise WatchRefused(f"you already follow {unseen} transactions the node has not seen; "
                           "report a hash once your wallet has sent it")


def unseen(record: TxRecord) -> bool:
    """Whether a followed record is one the node has not been seen to hold yet."""
    return not record.raw and record.nonce < 0


def why_drop(w3: Any, record: TxRecord, now: float | None = None) -> str | None:
    """Why a followed (wallet-sent) pending record should be let go, or None to keep it."""
    seen = seen_by_node(w3, record.tx_hash)
    if seen is not None:
        if to_checksum_address(seen["from"]) != record.sender:
            return f"sent by {to_checksum_address(seen['from'])}, not by {record.sender}"
        record.nonce, record.to = int(seen["nonce"]), seen.get("to")
        record.value = int(seen.get("value", 0))
        return None
    reason = replaced(w3, record)
    waited = (time.time() if now is None else now) - record.created
    if reason is None and waited > UNSEEN_S:
        reason = f"the node has not had it for {UNSEEN_S:.0f} s"
    return reason


def replaced(w3: Any, record: TxRecord) -> str | None:
    """Why a transaction the node no longer has is over: its nonce was mined by another."""
    if record.nonce >= 0 and w3.eth.get_transaction_count(record.sender, "latest") > record.nonce:
        return f"replaced: another transaction with nonce {record.nonce} was mined"
    return None
