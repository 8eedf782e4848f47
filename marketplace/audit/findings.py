"""What an audit found disagreeing, one line each, and the calls it decoded from the chain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One disagreement between the book, the events and the rules (kind names the check)."""

    kind: str  # "book", "auction", "mint", "delivery", "bus", "chain"
    subject: str  # what it is about: "deal 3", "listing 7 bid 12", "meter 0x…"
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.message}"


@dataclass(frozen=True)
class Call:
    """A transaction's decoded input: the contract function it called and its arguments
    (structs as dicts with their field names, bytes as bytes)."""

    function: str
    args: Mapping[str, Any]


def short(value: str | bytes) -> str:
    """An address or hash shortened for a line of output."""
    text = "0x" + value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= 14 else f"{text[:8]}…{text[-4:]}"
