"""Bad input to the API gets a clear JSON error and changes nothing that was accepted."""

from __future__ import annotations

import pytest

from tests.common import csrf_client


@pytest.fixture
def bob(login):
    return login("bob")


def test_api_needs_a_session(app):
    client = csrf_client(app)
    for method, path in [("GET", "/api/wallet"), ("POST", "/api/listings"),
                         ("POST", "/api/deals/1/close"), ("POST", "/api/send")]:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401
        assert response.get_json() == {"error": "log in first", "kind": "NotLoggedIn"}
    # Every page answers the one shell; it shows the login view first (no key in a new page).
    shell = client.get("/wallet")
    assert shell.status_code == 200 and b'data-view="wallet"' in shell.data
    assert b'id="view-login"' in shell.data


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({}, "give an account and its passphrase"),
        ({"account": "bob"}, "give an account and its passphrase"),
        ({"account": "0x1234", "passphrase": "x"}, "not an Ethereum address"),
        ({"account": "0x" + "ab" * 20, "passphrase": "x"}, "not a participant"),
        ({"account": "bob", "passphrase": "bob"}, "wrong passphrase"),
    ],
)
def test_login_refusals_say_what_is_wrong(app, payload, words):
    response = csrf_client(app).post("/api/login", json=payload)
    assert response.status_code in (400, 401)
    assert words in response.get_json()["error"]


def test_malformed_bodies_and_fields(app, bob, login):
    not_json = bob.post("/api/escrow/deposit", data="amount=1", content_type="text/plain")
    assert not_json.status_code == 400 and "deposit" in not_json.get_json()["error"]
    for amount in ("-1", "abc", "0", "1e999"):
        response = bob.post("/api/escrow/deposit", json={"amount_eth": amount})
        assert response.status_code == 400, amount
    listing = bob.post("/api/listings", json={"energy_wh": 10, "start_price_wei": "1",
                                              "duration_s": 60})
    assert listing.status_code == 403 and "only producers" in listing.get_json()["error"]
    missing = bob.post("/api/listings/999/bids", json={"price_wei": "1"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "no listing 999"
    assert bob.get("/api/nope").get_json()["kind"] == "NotFound"
    mining = login("admin").post("/api/admin/mining", json={"on": "yes"})
    assert mining.status_code == 400 and "true or false" in mining.get_json()["error"]


def test_withdrawing_more_than_deposited_gives_the_contracts_reason(app, bob):
    response = bob.post("/api/escrow/withdraw", json={"amount_eth": "1"})
    assert response.status_code == 502
    assert "InsufficientBalance(0, 1000000000000000000)" in response.get_json()["error"]
