"""The grid view: live charts of PV generation, battery charge, power per meter and prices."""

from __future__ import annotations

from flask import Blueprint

from web.pages import shell

bp = Blueprint("grid", __name__, template_folder="templates")


@bp.get("/grid")
def page() -> str:
    """The page shell on the grid view (its data comes over the /grid socket, logged in)."""
    return shell("grid")
