"""The admin page: accounts, bridges, meter enrollment and network health, for the operator.

Admins are the accounts named in the ADMINS setting (the demo creates `admin`). Chain-side
admin actions (enrolling a meter) are sent with the portal operator's key, which holds the
token's admin role; signing in as an admin is what authorises the portal to use it.
Participants register their own keys (web.registrations); the admin approves them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify

from marketplace import rules
from marketplace.errors import InvalidInput, NotAllowed
from marketplace.ledger import CONSUMER, PRODUCER
from web import bridges, registrations, registry
from web.pages import shell
from web.session import User, body, login_required, runtime

bp = Blueprint("admin", __name__, template_folder="templates")

KINDS = {"producer": PRODUCER, "consumer": CONSUMER}
KIND_NAMES = {0: None, PRODUCER: "producer", CONSUMER: "consumer"}


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Logged in as an admin, or refused (401 logged out, 403 not an admin)."""

    @login_required
    @functools.wraps(view)
    def wrapped(account: User, *args: Any, **kwargs: Any) -> Any:
        if not runtime().is_admin(account.address):
            raise NotAllowed("only the portal's admins can do this")
        return view(account, *args, **kwargs)

    return wrapped


@bp.get("/admin")
def page() -> str:
    """The page shell on the admin view (every admin API call checks the admin role)."""
    return shell("admin")


@bp.get("/api/admin/accounts")
@admin_required
def accounts(account):
    """Every participant with balances and its meter's registry entry on chain."""
    rt = runtime()
    ledger = rt.ledger
    rows = []
    for p in rt.store.participants():
        meter = ledger.meter_of(p["meter_address"]) if p["meter_address"] else None
        rows.append({
            "name": p["name"], "address": p["address"], "role": p["role"],
            "board_id": p["board_id"], "meter": p["meter_address"],
            "meter_enrolled": bool(meter and meter["kind"]),
            "meter_kind": KIND_NAMES.get(meter["kind"]) if meter else None,
            "meter_rated_power_w": meter["rated_power_w"] if meter else None,
            "meter_owner": meter["owner"] if meter and meter["kind"] else None,
            "eth_wei": str(ledger.eth_balance(p["address"])),
            "tokens_wh": ledger.token_balance(p["address"]),
            "escrow_free_wei": str(ledger.escrow_free(p["address"])),
        })
    return jsonify(accounts=rows)


@bp.get("/api/admin/registrations")
@admin_required
def pending_registrations(account):
    """People who registered their own key and wait for a role."""
    return jsonify(registrations=runtime().store.registrations("pending"))


@bp.post("/api/admin/registrations/<address>/approve")
@admin_required
def approve_registration(account, address):
    """Seat a registered person as producer or consumer (its board comes with its bridge)."""
    address = rules.parse_address(address, "registration")
    data = body()
    return jsonify(registrations.approve(runtime(), address, data.get("role"),
                                         data.get("board_id")))


@bp.post("/api/admin/registrations/<address>/reject")
@admin_required
def reject_registration(account, address):
    address = rules.parse_address(address, "registration")
    return jsonify(registrations.reject(runtime(), address))


@bp.post("/api/admin/meters")
@admin_required
def enroll(account):
    """Ask an owner to consent to a meter's enrollment with this role and rated power; the
    enrollment is sent once the owner signs it (their wallet view lists it), 202."""
    data = body()
    rt = runtime()
    meter = rules.parse_address(data.get("meter"), "meter")
    owner = rt.resolve(str(data.get("owner") or "").strip())
    seated = rt.store.participant(owner)
    if not seated:
        raise InvalidInput(f"{owner} is not a participant of this market")
    if data.get("role") not in KINDS:
        raise InvalidInput("role is producer or consumer")
    rated = rules.parse_int(data.get("rated_power_w"), "rated power (W)", 1, 2**32 - 1)
    rt.meters.request(owner, meter, seated["board_id"] or "", data["role"], rated)
    entry = _meter(meter)
    return jsonify({**entry, "meter": meter, "owner": owner, "status": "consent requested"}), 202


@bp.post("/api/admin/bridges")
@admin_required
def register_bridge(account):
    """Register a bridge with the boards (and their meters) it may serve; its token, once."""
    data = body()
    return jsonify(registry.register(runtime(), data.get("id"), data.get("boards"))), 201


@bp.get("/api/admin/bridges")
@admin_required
def list_bridges(account):
    """Every registered bridge with its boards (no tokens)."""
    return jsonify(bridges=registry.listing(runtime()))


@bp.delete("/api/admin/bridges/<bridge_id>")
@admin_required
def revoke_bridge(account, bridge_id):
    """Revoke a bridge's credential and close its connection: its boards go offline."""
    registry.revoke(runtime(), bridge_id)
    bridges.disconnect_bridge(bridge_id)
    return jsonify(id=bridge_id, revoked=True)


@bp.post("/api/admin/meters/<meter>/disenroll")
@admin_required
def disenroll(account, meter):
    meter = rules.parse_address(meter, "meter")
    runtime().ledger.disenroll_meter(meter)
    return jsonify(meter=meter, **_meter(meter))


@bp.post("/api/admin/mining")
@admin_required
def set_mining(account):
    """Start or stop block production, or set the block period (the operator's, on one node)."""
    data = body()
    wallets = runtime().wallets
    if "period" in data:
        wallets.set_block_period(data["period"])
    if "on" in data or "period" not in data:
        return jsonify(wallets.set_mining(data.get("on")))
    return jsonify(wallets.mining_state())


@bp.post("/api/admin/mining/mine")
@admin_required
def mine(account):
    """Produce one block now."""
    return jsonify(runtime().wallets.mine_block())


@bp.get("/api/admin/health")
@admin_required
def health(account):
    """Node, block height, pending transactions, boards online and their relays."""
    rt = runtime()
    started = time.perf_counter()
    try:
        block = rt.ledger.block_number()
        node = {"ok": True, "uri": rt.chain_uri, "block": block,
                "chain_id": rt.ledger.chain_id()}
    except Exception as err:  # health is where a dead node must show, not crash the page
        node = {"ok": False, "uri": rt.chain_uri, "error": str(err)}
    node["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    mining = rt.wallets.mining_state() if node["ok"] else None
    boards = rt.boards()
    return jsonify(node=node, mining=mining, app_pending=len(rt.txm.pending()), boards=boards,
                   open_listings=len(rt.store.listings("open")),
                   active_deals=len(rt.store.deals("active")))


@bp.get("/api/admin/bus")
@admin_required
def bus(account):
    """The bus check's disagreements, newest first: what the sellers sent and buyers got."""
    return jsonify(disagreements=runtime().store.bus_disagreements())


def _meter(meter: str) -> dict[str, Any]:
    entry = runtime().ledger.meter_of(meter)
    return {"enrolled": bool(entry["kind"]), "kind": KIND_NAMES.get(entry["kind"]),
            "owner": entry["owner"] if entry["kind"] else None,
            "rated_power_w": entry["rated_power_w"]}
