"""Listings and deals shaped for the pages and the API (wei as decimal strings for JSON)."""

from __future__ import annotations

import json
from typing import Any

from marketplace import rules
from marketplace.store import Store


def _name(store: Store, address: str | None) -> str | None:
    if address is None:
        return None
    found = store.participant(address)
    return found["name"] if found else None


def listing_view(
    store: Store, row: dict[str, Any], now: float, limits: rules.Limits,
    names: dict[str, str] | None = None, *, bid_validity_s: int,
) -> dict[str, Any]:
    """A listing with its highest bid, bidder, time left and the lowest acceptable bid (from
    the row: the store keeps the highest bid and the count with each bid), and what a bidder
    needs to build its own bid: the offer's hash, the lot (maxWh) and the expiry bounds.

    names (address -> name) spare the queries when a caller shows many listings at once;
    bid_validity_s: the market's (Settings.bid_validity_s), for the expiry bounds."""
    best = (row["leader_bid"], row["leader_price"], row["leader_bidder"]) \
        if row.get("leader_bid") is not None else None

    def name(address: str | None) -> str | None:
        if names is not None and address is not None:
            return names.get(address)
        return _name(store, address)

    expiry = rules.bid_expiry_bounds(row.get("closes_by"), row["deadline"], bid_validity_s)
    return {
        "id": row["id"],
        "seller": row["seller"],
        "seller_name": name(row["seller"]),
        "energy_wh": row["energy_wh"],
        "start_price_wei": str(row["start_price"]),
        "highest_bid_wei": str(best[1]) if best else None,
        "highest_bidder": best[2] if best else None,
        "highest_bidder_name": name(best[2]) if best else None,
        "bid_count": row["bid_count"],
        "min_next_bid_wei": str(
            rules.min_next_bid(row["start_price"], best[1] if best else None, limits)
        ),
        "closes_by": row.get("closes_by"),
        "created": row["created"],
        "deadline": row["deadline"],
        "seconds_left": max(0.0, round(row["deadline"] - now, 1)),
        "status": row["status"],
        # The seller's signed consent, public: anyone can check a bid names this offer.
        "offer": json.loads(row["offer"]) if row.get("offer") else None,
        "offer_signature": row.get("offer_signature"),
        "offer_hash": row.get("offer_hash"),
        # A bid signs an expiry in these bounds (the least is what bid_terms gives): with the
        # offer hash and energy_wh (maxWh) a page builds its bid without asking for terms.
        "bid_expiry_min": expiry[0],
        "bid_expiry_max": expiry[1],
    }


def listing_order(view: dict[str, Any]) -> tuple[float, int]:
    """The one order open listings are shown in: ending soonest first, then the older."""
    return (view["deadline"], view["id"])


def deal_view(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    """A deal with both parties' names and delivery so far."""
    return {
        "id": row["id"],
        "listing_id": row["listing_id"],
        "chain_deal_id": row["chain_deal_id"],
        "buyer": row["buyer"],
        "buyer_name": _name(store, row["buyer"]),
        "seller": row["seller"],
        "seller_name": _name(store, row["seller"]),
        "price_wei": str(row["price"]),
        "energy_wh": row["energy_wh"],
        "cost_wei": str(rules.cost_wei(row["price"], row["energy_wh"])),
        "delivered_wh": row["delivered_wh"],
        "reported_wh": row["reported_wh"],
        "paid_wei": str(row["paid_wei"]),
        "refunded_wei": None if row["refunded_wei"] is None else str(row["refunded_wei"]),
        "status": row["status"],
        "close_reason": row["close_reason"],
        "error": row["error"],
        "expires_at": row.get("expires_at"),
        "opened": row["opened"],
        "closed": row["closed"],
    }
