"""The wallet page and its API: balances, the send check, block production (what is signed:
web.tx)."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from web.session import body, login_required, runtime

bp = Blueprint("wallet", __name__, template_folder="templates")


@bp.get("/wallet")
@login_required
def page(account):
    return render_template("wallet/wallet.html", me=account.address)


@bp.get("/api/wallet")
@login_required
def summary(account):
    return jsonify(runtime().wallets.summary(account.address))


@bp.post("/api/send/check")
@login_required
def check_send(account):
    """The confirmation step: the send validated and spelled out, nothing sent yet."""
    data = body()
    return jsonify(runtime().wallets.check_send(account.address, data.get("to"),
                                                data.get("amount_eth")))


@bp.get("/api/mining")
@login_required
def mining(account):
    """Block production as anyone may see it: on or off, by whom and why (the controls: admin)."""
    return jsonify(runtime().wallets.mining_state())
