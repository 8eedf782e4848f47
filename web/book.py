"""GET /api/book: the published bid book, public, so anyone can run `gridbid verify`.

Every listing with the seller's signed offer (and its hash, the auction's end, its status) and
every bid the portal accepted on it, with the buyer's signature, a page of listings at a time.
GET /api/intervals/batches: the interval market's settlement batches with the operator's
signature, so anyone can send one (`gridbid settle-interval`).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from marketplace import rules
from marketplace.audit.book import listing_entry
from web.session import runtime

bp = Blueprint("book", __name__)

MAX_PAGE = 500  # listings in one answer


@bp.get("/api/book")
def book() -> Response:
    """Listings with ids above ?after (default 0), at most ?limit (default 100), with their
    bids; "next" is the ?after of the next page, null on the last one."""
    after = rules.parse_int(request.args.get("after", 0), "after", 0, 2**63 - 1)
    limit = rules.parse_int(request.args.get("limit", 100), "limit", 1, MAX_PAGE)
    rt = runtime()
    store, ledger = rt.store, rt.ledger
    rows = store.listings_page(after, limit + 1)  # one more tells whether a next page exists
    page = rows[:limit]
    chain_id, escrow = ledger.bid_domain()
    return jsonify(
        chain_id=chain_id, escrow=escrow,
        listings=[listing_entry(row, store.bids(row["id"])) for row in page],
        next=page[-1]["id"] if len(rows) > limit else None,
    )


@bp.get("/api/intervals/batches")
def interval_batches() -> Response:
    """Settlement batches with ids above ?after (default 0), at most ?limit (default 100),
    oldest first, each with its positions as sent and the operator's Batch signature; "next"
    is the ?after of the next page, null on the last one."""
    after = rules.parse_int(request.args.get("after", 0), "after", 0, 2**63 - 1)
    limit = rules.parse_int(request.args.get("limit", 100), "limit", 1, MAX_PAGE)
    rows = runtime().market.intervals.batches(after, limit + 1)
    page = rows[:limit]
    return jsonify(batches=page, next=page[-1]["id"] if len(rows) > limit else None)
