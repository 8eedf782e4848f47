"""Transactions their owners sign in the page: the portal prepares, checks and queues them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from marketplace.errors import InvalidInput
from web.session import User, body, login_required, runtime

bp = Blueprint("tx", __name__)


def _prepared(account: User, data: dict[str, Any]) -> dict[str, Any]:
    """The unsigned transaction of an action, checked and simulated as the owner."""
    rt, me = runtime(), account.address
    action = data.get("action")
    if action == "deposit":
        return rt.wallets.prepare_deposit(me, data.get("amount_eth"), data.get("market"))
    if action == "withdraw":
        return rt.wallets.prepare_withdrawal(me, data.get("amount_eth"), data.get("market"))
    if action == "cancel_withdrawal":
        return rt.wallets.prepare_cancellation(me, data.get("market"))
    if action == "complete_withdrawal":
        return rt.wallets.prepare_completion(me, data.get("market"))
    if action == "send":
        return rt.wallets.prepare_send(me, data.get("to"), data.get("amount_eth"))
    if action == "approve":
        return rt.market.prepare_approval(me, data.get("energy_wh"))
    if action == "close":
        return rt.market.prepare_close(me, data.get("deal_id"))
    if action == "cancel_listing":
        return rt.market.prepare_cancel(me, data.get("listing_id"))
    raise InvalidInput("action is one of deposit, withdraw, cancel_withdrawal, "
                       "complete_withdrawal, send, approve, close, cancel_listing")


@bp.post("/api/tx/prepare")
@login_required
def prepare(account):
    """What to sign: to, data, value, fixed gas, nonce, chain id and fees (decimal strings)."""
    return jsonify(_prepared(account, body()))


@bp.post("/api/tx")
@login_required
def submit(account):
    """The owner's signed bytes: queued, answered at once with the hash computed here."""
    return jsonify(runtime().wallets.submit(account.address, body().get("raw"))), 202


@bp.post("/api/tx/sent")
@login_required
def sent(account):
    """A hash the owner's own wallet sent through its RPC: followed like the rest."""
    data = body()
    return jsonify(runtime().wallets.follow(account.address, data.get("tx_hash"),
                                            data.get("label"))), 202


@bp.get("/api/tx/<tx_hash>")
@login_required
def transaction(account, tx_hash):
    return jsonify(runtime().wallets.transaction(tx_hash.lower()))
