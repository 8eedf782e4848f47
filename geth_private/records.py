"""What the app knows of each transaction it signed or was handed: status, receipt, bytes."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TxStatus(StrEnum):
    """Where a transaction the app signed stands; a str, so it compares and serialises as one."""

    QUEUED = "queued"  # held by the app until the sender's earlier transaction is mined
    PENDING = "pending"  # handed to the node, no receipt yet
    MINED = "mined"  # in a block, and it succeeded
    FAILED = "failed"  # refused by the node, reverted, or replaced


@dataclass
class TxRecord:
    """What the app knows of one transaction it signed."""

    tx_hash: str
    sender: str
    nonce: int
    label: str
    to: str | None
    value: int
    status: TxStatus
    created: float
    submitted: float = 0.0
    block: int | None = None
    gas_used: int | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    raw: bytes = field(default=b"", repr=False)
    receipt: Any = field(default=None, repr=False)
    # public() as the manager took the record in, before any other thread could move it on.
    accepted: dict[str, Any] | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        """The record as plain JSON-ready data (no raw bytes, no parameters)."""
        return {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("raw", "params", "receipt", "accepted")
        }

    def accept(self) -> None:
        """Note what is true now, as the manager takes the record in (call it before the
        record is where the transactions loop can reach it)."""
        self.accepted = self.public()

    def as_accepted(self) -> dict[str, Any]:
        """The record as it stood when the request that queued it was accepted: a response's
        answer. The transactions loop may send it (queued -> pending -> mined) before the
        response is serialised; record(hash) / GET /api/tx/<hash> says where it stands now."""
        return dict(self.accepted) if self.accepted is not None else self.public()


WAITING = (TxStatus.QUEUED, TxStatus.PENDING)


class TxBook:
    """The records a transaction manager keeps, newest last, the oldest forgotten past
    `history`; safe to read from any thread."""

    def __init__(self, history: int = 500):
        self._records: dict[str, TxRecord] = {}
        self._order: deque[str] = deque(maxlen=history)
        self.lock = threading.RLock()  # also held by callers that check-then-add

    def add(self, record: TxRecord) -> None:
        """Keep a record (the oldest beyond the history are forgotten)."""
        with self.lock:
            self._records[record.tx_hash] = record
            self._order.append(record.tx_hash)
            if len(self._records) > (self._order.maxlen or 0):
                live = set(self._order)
                for old in [h for h in self._records if h not in live]:
                    del self._records[old]

    def get(self, tx_hash: str) -> TxRecord | None:
        """The record of a hash, if kept."""
        with self.lock:
            return self._records.get(tx_hash.lower())

    def in_order(self) -> list[TxRecord]:
        """Every kept record, oldest first."""
        with self.lock:
            return [self._records[h] for h in self._order if h in self._records]

    def waiting(self, sender: str | None = None) -> list[TxRecord]:
        """Records not yet mined (queued here or pending at the node), oldest first."""
        return [r for r in self.in_order()
                if r.status in WAITING and (sender is None or r.sender == sender)]
