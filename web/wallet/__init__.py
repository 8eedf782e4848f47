"""The wallet page and its API: balances, the send check, block production (what is signed:
web.tx)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from marketplace import rules
from web.pages import shell
from web.session import body, login_required, runtime

bp = Blueprint("wallet", __name__, template_folder="templates")


@bp.get("/wallet")
def page() -> str:
    """The page shell on the wallet view."""
    return shell("wallet")


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


@bp.post("/api/nodes/<bridge_id>/sealing")
@login_required
def node_sealing(account, bridge_id):
    """The owner's toggle of their machine's own signer node ({"on": bool}), through its bridge;
    a refusal (the quorum) is a 409 with the bridge's sentence."""
    return jsonify(runtime().wallets.set_node_sealing(account.address, bridge_id,
                                                      body().get("on")))


@bp.get("/api/meters/consent")
@login_required
def consents(account):
    """The signed-in owner's meter enrollments waiting for consent, with their EIP-712 terms."""
    return jsonify(consents=runtime().meters.pending(account.address))


@bp.post("/api/meters/consent")
@login_required
def give_consent(account):
    """The owner's signed MeterConsent: checked as theirs, the enrollment sent (202)."""
    data = body()
    meter = rules.parse_address(data.get("meter"), "meter")
    record = runtime().meters.submit(account.address, meter, data.get("deadline"),
                                     data.get("signature"))
    return jsonify(record), 202
