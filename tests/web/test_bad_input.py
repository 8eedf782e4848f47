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


def test_a_withdrawal_is_a_request_the_wallet_shows(app, runtime, bob):
    from tests.common import wait_for

    ledger = runtime.ledger
    address = bob.get("/api/wallet").get_json()["address"]
    assert bob.post("/api/escrow/deposit", json={"amount_eth": "1"}).status_code == 202
    wait_for(lambda: ledger.escrow_free(address) == 10**18, what="bob's deposit")
    assert bob.post("/api/escrow/withdraw", json={"amount_eth": "0.25"}).status_code == 202
    wait_for(lambda: bob.get("/api/wallet").get_json()["withdrawal"], what="the request")
    wallet = bob.get("/api/wallet").get_json()
    notice = runtime.market.settings.escrow_notice_s()
    assert wallet["escrow_notice_s"] == notice == 24 * 3600 + 60 + 3600
    pending = wallet["withdrawal"]
    assert pending["amount_wei"] == str(10**18 // 4) and pending["to_market"] == "out"
    head = ledger.w3.eth.get_block("latest")["timestamp"]
    assert head < pending["available_at"] <= head + notice
    assert wallet["escrow_free_wei"] == str(10**18)  # taken out only once completed
