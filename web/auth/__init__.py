"""Login and logout: a passphrase unlocks the account's keystore file once per session."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, session

from geth_private.errors import KeystoreError, WrongPassphrase
from marketplace.errors import MarketError
from web.session import body, current_account, runtime

bp = Blueprint("auth", __name__, template_folder="templates")


@bp.get("/login")
def login_page():
    return render_template("auth/login.html")


@bp.get("/api/accounts")
def accounts():
    """Participants to pick from on the login page (no secrets)."""
    rows = runtime().store.participants()
    return jsonify(
        accounts=[{"name": r["name"], "address": r["address"], "role": r["role"]} for r in rows]
    )


@bp.post("/api/login")
def login():
    data = body()
    who = str(data.get("account") or "").strip()
    passphrase = data.get("passphrase")
    if not who or not isinstance(passphrase, str) or not passphrase:
        return jsonify(error="give an account and its passphrase", kind="InvalidInput"), 400
    try:
        token, account = runtime().login(who, passphrase)
    except WrongPassphrase:
        return jsonify(error="wrong passphrase for this account", kind="WrongPassphrase"), 401
    except (KeystoreError, MarketError) as err:
        return jsonify(error=str(err), kind=type(err).__name__), 400
    runtime().keyring.drop(session.get("key"))
    session.clear()
    session["key"] = token
    return jsonify(me(account.address))


@bp.post("/api/logout")
def logout():
    runtime().keyring.drop(session.pop("key", None))
    session.clear()
    return jsonify(ok=True)


@bp.get("/api/me")
def whoami():
    account = current_account()
    if account is None:
        return jsonify(error="log in first", kind="NotLoggedIn"), 401
    return jsonify(me(account.address))


def me(address: str) -> dict:
    """The logged-in participant as the pages need it."""
    who = runtime().store.participant(address) or {}
    return {"address": address, "name": who.get("name"), "role": who.get("role")}
