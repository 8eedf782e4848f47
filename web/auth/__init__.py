"""Login and logout: a passphrase unlocks the account's keystore file once per session."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, session

from geth_private.errors import KeystoreError, WrongPassphrase
from marketplace.errors import InvalidInput, MarketError
from web.errors import LoginRefused, LoginThrottled, NotLoggedIn, PassphraseRefused
from web.pages import shell
from web.session import body, csrf_token, current_account, runtime
from web.state import portal

bp = Blueprint("auth", __name__, template_folder="templates")


@bp.get("/login")
def login_page() -> str:
    """The page shell on the login view."""
    return shell("login")


@bp.get("/register")
def register_page() -> str:
    """The page shell on the register view (the key is made in the browser)."""
    return shell("register")


@bp.get("/api/accounts")
def accounts():
    """Participants to pick from on the login page (no secrets)."""
    rows = runtime().store.participants()
    return jsonify(
        accounts=[{"name": r["name"], "address": r["address"], "role": r["role"]} for r in rows]
    )


@bp.get("/api/csrf")
def csrf():
    """The session's CSRF token, for clients that are not the portal's own pages."""
    return jsonify(csrf=csrf_token())


@bp.post("/api/login")
def login():
    data = body()
    who = str(data.get("account") or "").strip()
    passphrase = data.get("passphrase")
    if not who or not isinstance(passphrase, str) or not passphrase:
        raise InvalidInput("give an account and its passphrase")
    throttles = portal().throttles
    address = runtime().resolve(who)
    client = request.remote_addr or "?"
    wait = max(throttles.accounts.wait_s(address), throttles.clients.wait_s(client))
    if wait > 0:
        raise LoginThrottled(int(wait) + 1)
    try:
        token, account = runtime().login(address, passphrase)
    except WrongPassphrase as err:
        throttles.accounts.failed(address)
        throttles.clients.failed(client)
        current_app.logger.warning("wrong passphrase for %s from %s", address, client)
        raise PassphraseRefused() from err
    except (KeystoreError, MarketError) as err:
        raise LoginRefused(str(err), kind=type(err).__name__) from err
    throttles.accounts.succeeded(address)
    _end_session()
    session["key"] = token
    return jsonify(me(account.address, csrf=csrf_token()))


@bp.post("/api/logout")
def logout():
    _end_session()
    return jsonify(ok=True, csrf=csrf_token())


@bp.get("/api/me")
def whoami():
    account = current_account()
    if account is None:
        raise NotLoggedIn()
    return jsonify(me(account.address))


def me(address: str, **extra: object) -> dict:
    """The logged-in participant as the pages need it."""
    who = runtime().store.participant(address) or {}
    return {"address": address, "name": who.get("name") or runtime().name_of(address),
            "role": who.get("role"), "admin": runtime().is_admin(address), **extra}


def _end_session() -> None:
    """Forget the session's unlocked key (server memory) and close its live channels."""
    token = session.get("key")
    runtime().keyring.drop(token)
    portal().sockets.close(token)
    session.clear()

