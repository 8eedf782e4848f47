"""Helpers the tests share (Home Assistant's tests/common.py): fixtures live in conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    """Poll condition until it is truthy; fail the test with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


def csrf_client(app):
    """A test client that sends the session's CSRF token with every request, as the pages do."""
    client = app.test_client()
    client.environ_base["HTTP_X_CSRF_TOKEN"] = client.get("/api/csrf").get_json()["csrf"]
    return client


def csrf_session(url: str):
    """A requests.Session for a portal at url, sending the CSRF token as the pages do."""
    import requests

    session = requests.Session()
    session.headers["X-CSRF-Token"] = session.get(f"{url}/api/csrf", timeout=10).json()["csrf"]
    return session


def portal_login(url: str, name: str):
    """A requests.Session logged in as a demo account of a portal running at url."""
    session = csrf_session(url)
    answer = session.post(f"{url}/api/login",
                          json={"account": name, "passphrase": f"{name}-demo"}, timeout=30)
    assert answer.ok, answer.text
    session.headers["X-CSRF-Token"] = answer.json()["csrf"]  # the login's new session
    return session
