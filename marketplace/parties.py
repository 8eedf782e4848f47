"""Who trades on the market: a participant by address, and the boards that measure them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from marketplace.errors import NotFound
from marketplace.store import Store


def participant(store: Store, address: str) -> dict[str, Any]:
    """A participant by address, or NotFound."""
    found = store.participant(address)
    if not found:
        raise NotFound(f"{address} is not a participant of this market")
    return found


def board_of(store: Store, address: str) -> str:
    """The board that measures a participant."""
    return participant(store, address)["board_id"]


def producer_boards(store: Store, exclude: Collection[str] = ()) -> list[str]:
    """The boards of every producer (the meters that mint), but those of excluded addresses."""
    return [p["board_id"] for p in store.participants()
            if p["role"] == "producer" and p["address"] not in exclude]
