"""Who is logged in: the session names the address whose signature opened it (no key here)."""

from __future__ import annotations

import copy
import functools
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature

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


class VerifiedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with each cookie's verified contents kept: a page and
    its bids send the same cookie many times, and checking its HMAC and inflating its JSON
    again was a tenth of a bid's CPU. A kept cookie still ages (max_age, as itsdangerous
    checks it), is kept per secret key, and each request gets its own copy."""

    KEEP = 2048  # cookies kept (about one per browser session active lately)

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """The request's session, from the kept contents of its cookie when it was seen."""
        value = request.cookies.get(self.get_cookie_name(app))
        if not value or not app.secret_key:
            return super().open_session(app, request)
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()), value)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if kept is None:
            serializer = self.get_signing_serializer(app)
            try:
                data, signed_at = serializer.loads(value, max_age=max_age, return_timestamp=True)
            except BadSignature:
                return self.session_class()
            kept = (data, int(signed_at.timestamp()))
            with self._lock:
                self._kept[key] = kept
                while len(self._kept) > self.KEEP:
                    self._kept.popitem(last=False)
        elif not 0 <= int(time.time()) - kept[1] <= max_age:  # as itsdangerous expires it
            return self.session_class()
        return self.session_class(copy.deepcopy(kept[0]))
