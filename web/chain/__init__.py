"""GET /api/chain: the chain in plain sight — id, the RPC URL, contracts, how they were built."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, url_for

from marketplace.wallet import block_production
from web.session import runtime

bp = Blueprint("chain", __name__)


@bp.get("/api/chain")
def facts() -> Response:
    """Public facts, no login needed: what a wallet or `cast` needs to check the portal."""
    rt = runtime()
    ledger = rt.ledger
    build = ledger.build_info()
    return jsonify(
        chain_id=ledger.chain_id(),
        # As the browser reached the portal (through the trusted proxies' scheme and host).
        rpc_url=url_for("rpc.call", _external=True),
        contracts=ledger.addresses(),
        compiler=build["compiler"],
        evm_version=build["evm_version"],
        openzeppelin=build["openzeppelin"],
        block_production=block_production(rt.backend),
    )
