"""The marketplace page and its API: listings, bids, deals, Close connection."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from marketplace import rules
from web.pages import shell
from web.pushers import CLOSED_SHOWN
from web.session import body, login_required, runtime

bp = Blueprint("market", __name__, template_folder="templates")

MAX_CLOSED = 500  # closed auctions one request may ask for


@bp.get("/market")
def page() -> str:
    """The page shell on the market view."""
    return shell("market")


@bp.get("/api/listings")
@login_required
def listings(account):
    return jsonify(listings=runtime().market.listings("open"))


@bp.get("/api/listings/closed")
@login_required
def closed_listings(account):
    """Auctions that are over, the latest to end first: everyone's last `limit` (50 unless
    given) and the caller's own last `limit` sales and wins."""
    limit = rules.parse_int(request.args.get("limit", CLOSED_SHOWN), "limit", 1, MAX_CLOSED)
    return jsonify(listings=runtime().market.closed_listings(limit, account.address))


@bp.post("/api/listings/terms")
@login_required
def offer_terms(account):
    """The EIP-712 Offer to sign for a listing (checked as a listing first)."""
    data = body()
    return jsonify(runtime().market.offer_terms(
        account.address, data.get("energy_wh"), data.get("start_price_wei"),
        data.get("duration_s"),
    ))


@bp.post("/api/listings")
@login_required
def create_listing(account):
    """A listing is the seller's signed Offer, with its approval or permit when needed."""
    data = body()
    listing = runtime().market.create_listing(
        account.address, data.get("offer"), data.get("signature"), data.get("approval"),
        data.get("permit"), data.get("energy_wh"), data.get("start_price_wei"),
    )
    return jsonify(listing), 201


@bp.get("/api/listings/<int:listing_id>")
@login_required
def listing(account, listing_id):
    return jsonify(runtime().market.listing(listing_id))


@bp.post("/api/listings/<int:listing_id>/cancel")
@login_required
def cancel(account, listing_id):
    """Cancel with the signed approval (or permit) that lowers the allowance by the lot."""
    data = body()
    return jsonify(runtime().market.cancel_listing(account.address, listing_id,
                                                   data.get("approval"), data.get("permit")))


@bp.post("/api/listings/<int:listing_id>/bids/terms")
@login_required
def bid_terms(account, listing_id):
    """The EIP-712 bid to sign for a price (checked as a bid first)."""
    return jsonify(runtime().market.bid_terms(account.address, listing_id,
                                              body().get("price_wei")))


@bp.post("/api/listings/<int:listing_id>/bids")
@login_required
def bid(account, listing_id):
    """A bid the bidder signed in its page: stored with its own signature."""
    data = body()
    listing = runtime().market.place_bid(account.address, listing_id, data.get("bid"),
                                         data.get("signature"))
    return jsonify(listing), 201


@bp.get("/api/deals")
@login_required
def deals(account):
    return jsonify(deals=runtime().market.deals(account.address))


@bp.get("/api/deals/<int:deal_id>")
@login_required
def deal(account, deal_id):
    """One deal, for its parties and admins only."""
    rt = runtime()
    viewer = None if rt.is_admin(account.address) else account.address
    return jsonify(rt.market.deal(deal_id, viewer))


@bp.post("/api/deals/<int:deal_id>/close")
@login_required
def close(account, deal_id):
    return jsonify(runtime().market.close_connection(account.address, deal_id,
                                                     body().get("raw")))
