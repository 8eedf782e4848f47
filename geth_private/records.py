"""What the app knows of each transaction it signed or was handed: status, receipt, bytes."""

from __future__ import annotations

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

    def public(self) -> dict[str, Any]:
        """The record as plain JSON-ready data (no raw bytes, no parameters)."""
        return {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("raw", "params", "receipt")
        }
