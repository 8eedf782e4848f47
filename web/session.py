"""Who is logged in: the session names the address whose signature opened it (no key here)."""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, session

from web.errors import CsrfRefused, NotLoggedIn
from web.runtime import Runtime
from web.state import portal


@dataclass(frozen=True)
class User:
    """The person of a session: the address that signed its Sign-In with Ethereum message."""

    address: str


def runtime() -> Runtime:
    """The running portal's parts."""
    return portal().runtime


# A session ends this long after its sign-in, however busy: the logouts the store remembers
# (so that a copied cookie opens nothing once its session logged out) can then be forgotten.
MAX_SESSION_S = 7 * 86400


def current_account() -> User | None:
    """The signed-in person of this session, if any, not idle too long and not logged out."""
    address = session.get("address")
    if not address:
        return None
    now = time.time()
    if (now - session.get("seen", now) > current_app.config["SESSION_IDLE_S"]
            or now - session.get("opened", 0) > MAX_SESSION_S
            or runtime().store.session_ended(str(session.get("sid")))):
        session.clear()
        return None
    if now - session.get("seen", 0) > 30:  # the cookie is rewritten at most every 30 s
        session["seen"] = now
    portal().sockets.touch(str(session.get("sid")), session["seen"])
    return User(address)


def end_session() -> None:
    """Forget who this session was, here and for every copy of its cookie."""
    sid = session.get("sid")
    if sid:
        runtime().store.end_session(sid, time.time(), MAX_SESSION_S)
    session.clear()


def open_session(address: str) -> str:
    """Start a fresh session for an address that proved its key; the session's socket token."""
    session.clear()
    token = secrets.token_urlsafe(32)
    now = time.time()
    session.update(address=address, sid=token, seen=now, opened=now)
    return token


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """API calls get 401 when nobody is signed in (pages are the one shell, open to all)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        account = current_account()
        if account is None:
            raise NotLoggedIn()
        return view(account, *args, **kwargs)

    return wrapped


def body() -> dict[str, Any]:
    """The JSON object of a request (an empty dict when absent or not an object)."""
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Endpoints that act on no session's rights (e.g. "rpc.call": a wallet's JSON-RPC, whose
# writes are transactions their owner signed), so a cookie riding along gains nothing.
CSRF_EXEMPT: set[str] = set()


def csrf_exempt(endpoint: str) -> None:
    """Let POSTs to an endpoint ("blueprint.view") through without the session's token."""
    CSRF_EXEMPT.add(endpoint)


def csrf_token() -> str:
    """This session's CSRF token (pages carry it in a meta tag, scripts send it as a header)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """before_request: a state-changing request must echo the session's token in its header.

    The session cookie rides along with any cross-site form or fetch; the token does not,
    because another site cannot read our pages. Socket.IO traffic never reaches Flask's views
    (same-origin is checked there), so this guards every HTTP action.
    """
    if request.method in SAFE_METHODS or request.endpoint in CSRF_EXEMPT:
        return
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER, "")
    if not (expected and hmac.compare_digest(sent, expected)):
        raise CsrfRefused()
