"""VerifiedCookieSessions reads a cookie as Flask's own signed-cookie sessions do: the same
contents, the same expiry, a forged or re-keyed cookie refused, no request sharing another's."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask, jsonify, request, session

from web.session import VerifiedCookieSessions


def _app(interface) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"
    app.permanent_session_lifetime = timedelta(seconds=100)
    if interface is not None:
        app.session_interface = interface

    @app.post("/set")
    def set_():
        session.update(address="0xabc", seen=1.5, tags=["a"])
        if "n" in request.args:
            session["n"] = request.args["n"]
        return "ok"

    @app.get("/read")
    def read():
        data = {k: list(v) if isinstance(v, list) else v for k, v in session.items()}
        session.get("tags", []).append("b")  # a request mutating what it was given
        return jsonify(data)

    return app


@pytest.fixture(params=["flask", "kept"])
def app(request):
    return _app(None if request.param == "flask" else VerifiedCookieSessions())


def test_contents_and_copies(app):
    client = app.test_client()
    client.post("/set")
    for _ in range(3):  # the cookie read again: its contents, never another request's edits
        assert client.get("/read").json == {"address": "0xabc", "seen": 1.5, "tags": ["a"]}


def test_an_aged_cookie_is_empty_as_in_flask(app, monkeypatch):
    client = app.test_client()
    client.post("/set")
    assert client.get("/read").json["address"] == "0xabc"
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 101)
    assert client.get("/read").json == {}
    monkeypatch.setattr(time, "time", lambda: now - 3600)  # the clock stepped back
    assert client.get("/read").json == {}


def test_a_forged_or_rekeyed_cookie_is_empty(app):
    client = app.test_client()
    client.post("/set")
    cookie = client.get_cookie("session").value
    client.set_cookie("session", cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"))
    assert client.get("/read").json == {}
    client.set_cookie("session", cookie)
    assert client.get("/read").json["address"] == "0xabc"
    app.secret_key = "rotated"  # a new key without the old as a fallback: logged out
    assert client.get("/read").json == {}
    app.config["SECRET_KEY_FALLBACKS"] = ["test"]
    assert client.get("/read").json["address"] == "0xabc"


def test_the_kept_cookies_are_bounded():
    interface = VerifiedCookieSessions()
    interface.KEEP = 3
    app = _app(interface)
    for n in range(6):
        client = app.test_client()
        client.post(f"/set?n={n}")
        client.get("/read")
    assert len(interface._kept) == 3
