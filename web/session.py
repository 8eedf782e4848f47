"""Who is logged in: the session cookie names a key held in the runtime's key ring."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from flask import current_app, jsonify, redirect, request, session, url_for

from web.runtime import Runtime


def runtime() -> Runtime:
    """The running portal's parts."""
    return current_app.extensions["gridbid"]


def current_account() -> LocalAccount | None:
    """The unlocked account of this session, if logged in."""
    return runtime().keyring.get(session.get("key"))


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Pages redirect to login, API calls get 401, when no key is unlocked."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        account = current_account()
        if account is None:
            if request.path.startswith("/api/"):
                return jsonify(error="log in first", kind="NotLoggedIn"), 401
            return redirect(url_for("auth.login_page"))
        return view(account, *args, **kwargs)

    return wrapped


def body() -> dict[str, Any]:
    """The JSON object of a request (an empty dict when absent or not an object)."""
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}
