"""The grid page: live charts of PV generation, battery charge, power per meter and prices."""

from __future__ import annotations

from flask import Blueprint, render_template

from web.session import login_required

bp = Blueprint("grid", __name__, template_folder="templates")


@bp.get("/grid")
@login_required
def page(account):
    return render_template("grid/grid.html", me=account.address)
