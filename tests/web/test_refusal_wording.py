"""Refusals through the real API as sentences in ETH and Wh, never 5xx for a person's mistake."""

from __future__ import annotations

import pytest

from gridbid_client.client import ClientError
from tests.common import wait_for

ETH = 10**18


def refused(response, status, words):
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert words in body["error"], body
    assert "wei" not in body["error"] and "0000000000" not in body["error"], body
    return body["error"]


@pytest.fixture
def bob(login):
    return login("bob")


def test_depositing_more_than_one_has_is_a_sentence_not_a_500(app, bob):
    """Before: a deposit above the Ether balance answered 500 (the node's funds error)."""
    asked = {"action": "deposit", "amount_eth": "5000000"}
    refused(bob.post("/api/tx/prepare", json=asked), 400,
            "you have 100 ETH; you cannot deposit 5,000,000 ETH")
    # The whole balance leaves nothing for gas: said so, before anything is signed.
    whole = bob.post("/api/tx/prepare", json={"action": "deposit", "amount_eth": "100"})
    refused(whole, 400, "keep up to")
    assert bob.get("/api/wallet").get_json()["pending"] == []


def test_withdrawing_or_sending_more_than_one_has_speaks_eth(app, bob):
    """Before: "your free escrow balance is 0 wei; you cannot withdraw 5000000000000000000"."""
    refused(bob.post("/api/tx/prepare", json={"action": "withdraw", "amount_eth": "5"}), 400,
            "you have 0 ETH free in the escrow (lot auctions); you cannot withdraw 5 ETH")
    refused(bob.post("/api/send/check", json={"to": "carol", "amount_eth": "100000"}), 400,
            "you have 100 ETH; you cannot send 100,000 ETH")


def test_a_contract_refusal_is_a_sentence_not_its_custom_error(app, bob):
    """Before: 409 "Withdraw from escrow reverted: NoWithdrawalPending(0)"."""
    said = refused(bob.post("/api/tx/prepare", json={"action": "complete_withdrawal"}), 409,
                   "you have no withdrawal or move waiting in the lot auctions' escrow")
    assert "NoWithdrawalPending" not in said and "reverted" not in said


def test_ether_goes_to_a_participant_named(app, runtime, bob):
    carol = {a["name"]: a["address"] for a in runtime.demo_accounts}["carol"]
    prepared = bob.post("/api/tx/prepare", json={"action": "send", "to": "carol",
                                                 "amount_eth": "0.5"}).get_json()
    assert prepared["tx"]["to"] == carol and prepared["to_name"] == "carol"
    refused(bob.post("/api/send/check", json={"to": "karol", "amount_eth": "1"}), 400,
            "no participant is called 'karol'")


def test_an_escrow_short_bid_says_what_it_needs_in_eth(app, runtime, login, bob):
    """Before: "this bid needs 400000000000000 wei in your escrow balance, you have 0 free"."""
    alice = login("alice")
    alice_addr = {a["name"]: a["address"] for a in runtime.demo_accounts}["alice"]
    # What the listing check reads (the market's kept balances), not only the chain.
    wait_for(lambda: runtime.market.unlisted_wh(alice_addr) >= 40, what="alice's tokens")
    listing = alice.signer.create_listing(40, 10**16, 60)
    with pytest.raises(ClientError) as short:
        bob.signer.bid(listing["id"], 10**16)
    assert short.value.status == 400
    assert short.value.message == ("this bid needs 0.0004 ETH (40 Wh at 0.01 ETH/kWh); you have "
                                   "0 ETH free in the escrow; deposit more on the Wallet view")
    with pytest.raises(ClientError) as low:
        bob.signer.bid(listing["id"], 10**15)
    assert low.value.message.startswith("the start bid is 0.01 ETH/kWh (0.0004 ETH for these "
                                        "40 Wh)")


def test_a_mistyped_name_at_login_is_answered_about_the_name(app):
    """Before: "account 'alise' is not an Ethereum address (0x and 40 hex digits)"."""
    client = app.test_client()
    csrf = client.get("/api/csrf").get_json()["csrf"]
    client.environ_base["HTTP_X_CSRF_TOKEN"] = csrf
    said = refused(client.post("/api/login/message", json={"address": "alise"}), 400,
                   "no participant is named 'alise': pick one of ")
    assert "alice" in said and "bob" in said and "Ethereum address" not in said
    named = client.post("/api/login/message", json={"address": "alice"})
    assert named.status_code == 200 and "Sign in to gridbid." in named.get_json()["message"]
