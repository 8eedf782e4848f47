"""Sign-In with Ethereum: the page signs the portal's EIP-4361 message; the portal keeps no key."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request, session

from gridbid_client.siwe import SiweError, SiweMessage, new_nonce, rfc3339, verify
from marketplace import rules
from marketplace.errors import InvalidInput, NotFound
from web import access, registrations
from web.errors import LoginRefused, NotLoggedIn, RateLimited, SignatureRefused
from web.pages import shell
from web.session import body, csrf_token, current_account, end_session, open_session, runtime
from web.state import portal

bp = Blueprint("auth", __name__, template_folder="templates")

MESSAGE_TTL_S = 300  # a sign-in message must be signed and sent back within 5 minutes
STATEMENT = "Sign in to gridbid."


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
    """Participants (and the admins) to pick from on the login page, and whose keystore the
    portal serves."""
    rt = runtime()
    rows = [*rt.store.participants(), *({"name": a["name"], "address": a["address"],
                                         "role": "admin"} for a in rt.admin_accounts)]
    return jsonify(accounts=[
        {"name": r["name"], "address": r["address"], "role": r["role"],
         "keystore": registrations.serves_keystore(rt, r["address"])} for r in rows
    ])


@bp.get("/api/accounts/<address>/keystore")
def keystore(address: str):
    """An account's encrypted keystore, only where its owner let the portal serve it."""
    address = rules.parse_address(address, "account")
    found = registrations.keystore(runtime(), address)
    if found is None:
        raise NotFound("this portal does not serve that account's keystore: import your "
                       "keystore file instead")
    return jsonify(found)


@bp.get("/api/csrf")
def csrf():
    """The session's CSRF token, for clients that are not the portal's own pages."""
    return jsonify(csrf=csrf_token())


@bp.post("/api/login/message")
def login_message():
    """The EIP-4361 message this session may sign to sign in (its nonce is single-use)."""
    _limit()
    address = _account(body().get("address"))
    nonce = new_nonce()
    now = time.time()
    root = request.url_root.rstrip("/")
    message = SiweMessage(
        domain=access.portal_host(), address=address, statement=STATEMENT, uri=root,
        chain_id=runtime().ledger.chain_id(), nonce=nonce, issued_at=rfc3339(now),
        expiration_time=rfc3339(now + MESSAGE_TTL_S),
    )
    session["siwe"] = {"nonce": nonce, "address": address}
    return jsonify(message=message.text(), nonce=nonce, expires_at=int(now + MESSAGE_TTL_S))


def _account(typed: object) -> str:
    """The address signing in: as typed (0x…), or a participant's name looked up."""
    if isinstance(typed, str) and typed.strip() and not typed.strip().lower().startswith("0x"):
        rt = runtime()
        names = [p["name"] for p in rt.store.participants()] + [a["name"] for a in
                                                                  rt.admin_accounts]
        found = [p["address"] for p in rt.store.participants() if p["name"] == typed.strip()]
        found += [a["address"] for a in rt.admin_accounts if a["name"] == typed.strip()]
        if found:
            return found[0]
        shown = typed.strip()[:40]
        raise InvalidInput(f"no participant is named {shown!r}: pick one of "
                           f"{', '.join(sorted(names)) or 'none yet'}, or give an address "
                           "(0x and 40 hex digits)")
    return rules.parse_address(typed, "account")


@bp.post("/api/login")
def login():
    """Open the session of the address whose signature of this session's message checks out."""
    _limit()
    address = _signed_in_address(body())
    rt = runtime()
    if not rt.store.participant(address) and not rt.is_admin(address):
        registration = rt.store.registration(address)
        if registration is not None and registration["status"] == "pending":
            raise LoginRefused("your registration waits for the admin's approval",
                               kind="RegistrationPending")
        raise LoginRefused(f"{address} is not a participant of this market; register first",
                           kind="NotAParticipant")
    access.refuse_demo_beyond_loopback(address)
    _end_session()
    open_session(address)
    rt.market.learn(address)  # its escrow and tokens read in the loop, before it trades
    current_app.logger.info("signed in: %s from %s", address, _client())
    return jsonify(me(address, csrf=csrf_token()))


@bp.post("/api/register")
def register():
    """A person's own key, made in their browser: the encrypted keystore and a signed message
    proving it, kept until the admin approves; the portal never sees the key itself."""
    _limit()
    data = body()
    address = _signed_in_address(data)
    registrations.register(runtime(), address, data.get("name"), data.get("keystore"),
                           data.get("serve_keystore") is True)
    session.pop("siwe", None)
    return jsonify(address=address, name=str(data.get("name")).strip(), status="pending"), 201


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


def me(address: str, **extra: object) -> dict[str, Any]:
    """The signed-in participant as the pages need it."""
    who = runtime().store.participant(address) or {}
    return {"address": address, "name": who.get("name") or runtime().name_of(address),
            "role": who.get("role"), "meter": who.get("meter_address"),
            "admin": runtime().is_admin(address), **extra}


def _signed_in_address(data: dict[str, Any]) -> str:
    """The address that signed this session's sign-in message (SignatureRefused if not)."""
    message, signature = data.get("message"), data.get("signature")
    if not isinstance(message, str) or not isinstance(signature, str):
        raise InvalidInput("give the signed sign-in message and its signature")
    issued = session.get("siwe") or {}
    if not issued.get("nonce"):
        raise SignatureRefused("ask for a sign-in message first (POST /api/login/message)")
    try:
        checked = verify(message, signature, domain=access.portal_host(),
                         nonce=issued["nonce"], now=time.time(),
                         chain_id=runtime().ledger.chain_id())
    except SiweError as err:
        current_app.logger.warning("sign-in refused from %s: %s", _client(), err)
        raise SignatureRefused(str(err)) from err
    if checked.address != issued.get("address"):
        raise SignatureRefused("the message names another account than the one asked for")
    session.pop("siwe", None)  # single use
    return checked.address


def _client() -> str:
    return access.client_address()


def _limit() -> None:
    """Spend one sign-in attempt of this client (never of an account), or RateLimited."""
    wait = portal().sign_ins.take(_client())
    if wait:
        raise RateLimited(math.ceil(wait))


def _end_session() -> None:
    """Close the session's live channels and forget who it was."""
    portal().sockets.close(session.get("sid"))
    end_session()
