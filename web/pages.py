"""The portal's one page: every page route answers the same shell, opened on its view.

The browser keeps the unlocked key in that page's memory, so the views (login, register,
wallet, market, grid, admin, chain) are parts of one document the page's router shows in turn;
what each view may show is decided by the API it calls, never by which shell was served.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from web.session import runtime

bp = Blueprint("pages", __name__)

VIEWS = ("login", "register", "wallet", "market", "grid", "admin", "chain")


def shell(view: str) -> str:
    """The page shell (web/templates/app.html) opened on `view`."""
    if view not in VIEWS:
        raise ValueError(f"no view named {view!r}")
    rt = runtime()
    config = current_app.config
    return render_template(
        "app.html", view=view,
        limits=rt.market.settings.limits if rt.started else None,
        idle_timeout_s=int(config["SESSION_IDLE_S"]),
        # Keystores made in the page (registration) cost what the portal's own do.
        scrypt_n=int(config["SCRYPT_N"]),
    )


@bp.get("/")
def index() -> str:
    """The shell on the wallet view (the page shows the login view first when needed)."""
    return shell("wallet")


@bp.get("/chain")
def chain_page() -> str:
    """The shell on the chain view: chain id, RPC URL, contracts, transaction hashes."""
    return shell("chain")
