"""The community interval market's API: standing orders, market mode, published intervals."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from marketplace import rules
from marketplace.errors import InvalidInput, NotFound
from web.pushers import timing
from web.session import body, login_required, runtime

bp = Blueprint("intervals", __name__)

KINDS = ("sell", "buy")
MODES = ("lots", "intervals")
MAX_HISTORY = 96 * 7  # a week of 15-minute intervals
MAX_FILLS = 500
LAST_N = 2**63 - 1  # the store's integers: a larger interval number was never cleared


def _kind(value: object) -> str:
    """The order's side, refused with a sentence unless "sell" or "buy"."""
    if value not in KINDS:
        raise InvalidInput(f'kind must be "sell" or "buy", not {_shown(value)}')
    return str(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object (the typed data's message as signed)")
    return value


def _signature(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("signature must be 0x and 65 bytes of hex (the order signed)")
    return value


@bp.post("/api/orders/terms")
@login_required
def order_terms(account):
    """The EIP-712 SellOrder or BuyOrder to sign for these limits (checked as an order first)."""
    data = body()
    kind = _kind(data.get("kind"))
    fields = {k: v for k, v in data.items() if k != "kind"}
    return jsonify(runtime().market.intervals.order_terms(account.address, kind, fields))


@bp.post("/api/orders")
@login_required
def set_order(account):
    """A standing order its owner signed in the page; it replaces the owner's previous one."""
    data = body()
    kind = _kind(data.get("kind"))
    order = _object(data.get("order"), "order")
    signature = _signature(data.get("signature"))
    return jsonify(runtime().market.intervals.set_order(account.address, kind, order,
                                                        signature)), 201


@bp.delete("/api/orders")
@login_required
def cancel_order(account):
    """Cancel the caller's standing order: it takes part in no clearing from now on."""
    return jsonify(runtime().market.intervals.cancel_order(account.address))


@bp.get("/api/orders/mine")
@login_required
def my_order(account):
    """The caller's standing order (or null), its market mode and the next clearing."""
    intervals = runtime().market.intervals
    return jsonify(order=intervals.order_of(account.address),
                   mode=intervals.mode_view(account.address), **timing(runtime().market))


@bp.post("/api/market-mode")
@login_required
def set_mode(account):
    """Trade in the lot auctions or the interval market (from the next boundary on)."""
    mode = body().get("mode")
    if mode not in MODES:
        raise InvalidInput(f'mode must be "lots" or "intervals", not {_shown(mode)}')
    return jsonify(runtime().market.intervals.set_mode(account.address, mode))


@bp.get("/api/intervals")
def history():
    """Public: cleared intervals (price and volume only), a day of them unless `limit` says
    otherwise, and the timing."""
    market = runtime().market
    day = min(MAX_HISTORY, -(-86400 // int(market.settings.interval_s)))
    limit = rules.parse_int(request.args.get("limit", day), "limit", 1, MAX_HISTORY)
    return jsonify(intervals=market.intervals.history(limit), **timing(market))


@bp.get("/api/intervals/<int:n>")
def interval(n):
    """Public: one interval as published (orders, offers, bids, fills, signed readings)."""
    view = runtime().market.intervals.interval_view(n) if n <= LAST_N else None
    if view is None:
        raise NotFound(f"no interval {n}: it was never cleared")
    return jsonify(view)


@bp.get("/api/intervals/mine")
@login_required
def mine(account):
    """The caller's fills per interval and what the current interval has earned or cost."""
    limit = rules.parse_int(request.args.get("limit", 96), "limit", 1, MAX_FILLS)
    intervals = runtime().market.intervals
    return jsonify(fills=intervals.fills_of(account.address, limit),
                   current=intervals.current_of(account.address), **timing(runtime().market))
