"""The states a listing and a deal pass through, as the store keeps them and the pages show them."""

from __future__ import annotations

from enum import StrEnum


class ListingState(StrEnum):
    """Where an auction stands: open for bids, then sold, unsold or cancelled."""

    OPEN = "open"
    SOLD = "sold"
    UNSOLD = "unsold"
    CANCELLED = "cancelled"


class DealState(StrEnum):
    """Where a deal stands, from the auction's close to its end on chain."""

    OPENING = "opening"  # stored, openDeal sent or due; the escrow holds nothing yet
    ACTIVE = "active"  # relays on, delivery reported step by step
    PAUSED = "paused"  # a meter went offline: relays off, waiting for it to return
    CLOSING = "closing"  # a party's closeDeal is in flight
    CLOSED = "closed"  # the escrow closed it: paid and refunded
    FAILED = "failed"  # openDeal reverted: the deal never existed on chain


# Listings whose auction is over, the "Closed auctions" a page lists.
ENDED_LISTINGS = (ListingState.SOLD, ListingState.UNSOLD, ListingState.CANCELLED)
# Deals that still move energy or Ether (or may: an opening deal is about to).
LIVE_DEALS = (DealState.OPENING, DealState.ACTIVE, DealState.PAUSED, DealState.CLOSING)
# Deals a buyer's meter is busy with: the next deal of that buyer waits for them to end.
UNDER_WAY = (DealState.ACTIVE, DealState.PAUSED, DealState.CLOSING)
# Deals whose story is over.
ENDED = (DealState.CLOSED, DealState.FAILED)
