"""Sessions, CSRF, login throttling, logout, Socket.IO binding, cross-account refusals, admin."""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.common import csrf_client, wait_for
from web.extensions import socketio

ETH = 10**18


def names(runtime):
    return {a["name"]: a["address"] for a in runtime.demo_accounts + runtime.admin_accounts}


def test_session_cookie_is_httponly_and_samesite(app, runtime):
    client = csrf_client(app)
    response = client.post("/api/login", json={"account": "bob", "passphrase": "bob-demo"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, runtime, login):
    bob = login("bob")
    bob_addr = names(runtime)["bob"]
    token = bob.environ_base.pop("HTTP_X_CSRF_TOKEN")
    bare = bob.post("/api/escrow/deposit", json={"amount_eth": "1"})
    assert bare.status_code == 403 and bare.get_json()["kind"] == "CsrfRefused"
    assert "reload the page" in bare.get_json()["error"]
    forged = bob.post("/api/escrow/deposit", json={"amount_eth": "1"},
                      headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert forged.status_code == 403
    assert bob.get("/api/wallet").status_code == 200  # reading needs no token
    assert runtime.ledger.escrow_free(bob_addr) == 0
    ok = bob.post("/api/escrow/deposit", json={"amount_eth": "1"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 202
    wait_for(lambda: runtime.ledger.escrow_free(bob_addr) == ETH, what="the deposit")


def test_login_is_throttled_after_repeated_wrong_passphrases(app, runtime, clock):
    client = csrf_client(app)

    def attempt(account, passphrase):
        answer = client.post("/api/login", json={"account": account, "passphrase": passphrase})
        if answer.status_code == 200:  # a login starts a session with a new token
            client.environ_base["HTTP_X_CSRF_TOKEN"] = answer.get_json()["csrf"]
        return answer

    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert attempt("bob", "guess").status_code == 401
    locked = attempt("bob", "bob-demo")  # even the right passphrase waits now
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == str(app.config["LOGIN_LOCK_S"] + 1)
    assert "too many wrong passphrases" in locked.get_json()["error"]
    assert attempt("carol", "carol-demo").status_code == 200  # other accounts are not locked
    # Guessing on after the lock: the second lockout lasts twice as long.
    clock.advance(app.config["LOGIN_LOCK_S"] + 1)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert attempt("bob", "guess").status_code == 401
    assert attempt("bob", "bob-demo").get_json()["retry_after_s"] == (
        2 * app.config["LOGIN_LOCK_S"] + 1)
    clock.advance(2 * app.config["LOGIN_LOCK_S"] + 1)
    assert attempt("bob", "bob-demo").status_code == 200


def test_logout_wipes_the_key_and_closes_the_sessions_sockets(app, runtime, login):
    carol = login("carol")
    assert len(runtime.keyring._keys) == 1
    market = socketio.test_client(app, namespace="/market", flask_test_client=carol)
    wallet = socketio.test_client(app, namespace="/wallet", flask_test_client=carol)
    assert market.is_connected("/market") and wallet.is_connected("/wallet")
    # Another client holding a copy of the same cookie, as a stolen cookie would be.
    thief = csrf_client(app)
    thief.set_cookie("session", carol.get_cookie("session").value)
    assert thief.get("/api/wallet").status_code == 200

    out = carol.post("/api/logout")
    assert out.status_code == 200 and out.get_json()["ok"] is True
    assert runtime.keyring._keys == {}  # the unlocked key is gone from server memory
    wait_for(lambda: not market.is_connected("/market") and not wallet.is_connected("/wallet"),
             what="the session's sockets to close")
    assert thief.get("/api/wallet").status_code == 401
    carol.environ_base["HTTP_X_CSRF_TOKEN"] = out.get_json()["csrf"]
    assert carol.post("/api/escrow/deposit", json={"amount_eth": "1"}).status_code == 401


@pytest.mark.parametrize("namespace", ["/market", "/wallet", "/grid"])
def test_live_channels_refuse_a_browser_that_is_not_logged_in(app, runtime, namespace):
    anonymous = socketio.test_client(app, namespace=namespace)
    assert not anonymous.is_connected(namespace)


def test_nobody_can_act_for_another_account(app, runtime, login, clock):
    people = names(runtime)
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    wait_for(lambda: runtime.ledger.token_balance(people["alice"]) >= 20, what="alice's tokens")
    listing = alice.post("/api/listings", json={"energy_wh": 10, "start_price_wei": "1000",
                                                 "duration_s": 60}).get_json()
    # bob cannot cancel alice's listing, nor bid on it in carol's name.
    refused = bob.post(f"/api/listings/{listing['id']}/cancel")
    assert refused.status_code == 403 and "only the seller" in refused.get_json()["error"]
    assert carol.post("/api/escrow/deposit", json={"amount_eth": "1"}).status_code == 202
    wait_for(lambda: runtime.ledger.escrow_free(people["carol"]) == ETH, what="carol's deposit")
    as_carol = bob.post(f"/api/listings/{listing['id']}/bids",
                        json={"price_wei": "1000", "bidder": people["carol"]})
    assert as_carol.status_code == 400 and "escrow" in as_carol.get_json()["error"]  # bob's
    # A withdraw only ever touches one's own escrow: bob has none, carol's stays.
    taken = bob.post("/api/escrow/withdraw", json={"amount_eth": "1", "account": people["carol"]})
    assert taken.status_code == 502 and "InsufficientBalance" in taken.get_json()["error"]
    assert runtime.ledger.escrow_free(people["carol"]) == ETH
    # A send names its recipient only; the sender is the session's account, whatever is said.
    before = runtime.ledger.eth_balance(people["carol"])
    sent = bob.post("/api/send", json={"to": people["alice"], "amount_eth": "0.1",
                                       "from": people["carol"]})
    assert sent.status_code == 202 and sent.get_json()["sender"] == people["bob"]
    wait_for(lambda: not bob.get("/api/wallet").get_json()["pending"], what="the send")
    assert runtime.ledger.eth_balance(people["carol"]) == before
    # The deal of carol's win can be closed by carol or alice, not bob.
    assert carol.post(f"/api/listings/{listing['id']}/bids",
                      json={"price_wei": "1000"}).status_code == 201
    clock.advance(61)
    deal = wait_for(lambda: next((d for d in carol.get("/api/deals").get_json()["deals"]
                                  if d["status"] == "active"), None), what="the deal")
    intruder = bob.post(f"/api/deals/{deal['id']}/close")
    assert intruder.status_code == 403


def test_send_is_checked_before_it_is_confirmed(app, runtime, login):
    people = names(runtime)
    bob = login("bob")
    lower = people["carol"].lower()
    checked = bob.post("/api/send/check", json={"to": lower, "amount_eth": "0.25"}).get_json()
    assert checked == {"to": people["carol"], "to_name": "carol",
                       "amount_wei": str(ETH // 4), "balance_wei": checked["balance_wei"]}
    assert bob.get("/api/wallet").get_json()["pending"] == []  # nothing sent by the check
    # One flipped letter case breaks the EIP-55 checksum: a typo is caught.
    digits = people["carol"][2:]
    at = next(i for i, c in enumerate(digits) if c.isalpha())
    typo = "0x" + digits[:at] + digits[at].swapcase() + digits[at + 1:]
    wrong = bob.post("/api/send/check", json={"to": typo, "amount_eth": "1"})
    assert wrong.status_code == 400 and "wrong checksum" in wrong.get_json()["error"]
    too_much = bob.post("/api/send/check", json={"to": people["carol"], "amount_eth": "1000000"})
    assert too_much.status_code == 400 and "you cannot send" in too_much.get_json()["error"]


def test_admin_sees_health_creates_accounts_and_enrolls_meters(app, runtime, login):
    people = names(runtime)
    bob = login("bob")
    for path in ("/api/admin/health", "/api/admin/accounts"):
        refused = bob.get(path)
        assert refused.status_code == 403 and "admins" in refused.get_json()["error"]
    # /admin answers the same page shell as any view; its data comes from the admin API,
    # which refused bob above.
    assert bob.get("/admin").status_code == 200

    admin = login("admin")
    me = admin.get("/api/me").get_json()
    assert me["admin"] is True and me["role"] is None and me["name"] == "admin"
    health = admin.get("/api/admin/health").get_json()
    assert health["node"]["ok"] and health["node"]["block"] == runtime.ledger.block_number()
    assert {b["board_id"] for b in health["boards"]} == {"pv-alice", "load-bob", "load-carol"}
    assert all(b["online"] and b["relays"] == [False] for b in health["boards"])
    listed = {a["name"]: a for a in admin.get("/api/admin/accounts").get_json()["accounts"]}
    assert listed["alice"]["meter_enrolled"] and listed["alice"]["meter_kind"] == "producer"

    made = admin.post("/api/admin/accounts", json={"name": "dave", "role": "consumer",
                                                    "passphrase": "dave-pass-1"})
    assert made.status_code == 201
    dave = made.get_json()["address"]
    taken = admin.post("/api/admin/accounts", json={"name": "dave", "role": "consumer",
                                                     "passphrase": "dave-pass-1"})
    assert taken.status_code == 400 and "taken" in taken.get_json()["error"]
    weak = admin.post("/api/admin/accounts", json={"name": "eve", "role": "consumer",
                                                    "passphrase": "short"})
    assert weak.status_code == 400 and "8 characters" in weak.get_json()["error"]
    # dave logs in, but cannot bid before a meter board measures him.
    dave_client = csrf_client(app)
    response = dave_client.post("/api/login", json={"account": "dave", "passphrase": "dave-pass-1"})
    assert response.status_code == 200 and response.get_json()["role"] == "consumer"

    meter = Account.create().address
    enrolled = admin.post("/api/admin/meters", json={"meter": meter, "owner": "dave",
                                                      "role": "consumer", "rated_power_w": 500})
    assert enrolled.status_code == 200, enrolled.get_json()
    assert enrolled.get_json()["enrolled"] and enrolled.get_json()["owner"] == dave
    assert runtime.ledger.meter_of(meter)["owner"] == dave
    gone = admin.post(f"/api/admin/meters/{meter}/disenroll")
    assert gone.status_code == 200 and gone.get_json()["enrolled"] is False
    again = admin.post(f"/api/admin/meters/{meter}/disenroll")
    assert again.status_code == 502 and "MeterNotEnrolled" in again.get_json()["error"]
    bad = admin.post("/api/admin/meters", json={"meter": "0x12", "owner": "dave",
                                                 "role": "consumer", "rated_power_w": 5})
    assert bad.status_code == 400 and "not an Ethereum address" in bad.get_json()["error"]
    assert people["admin"] not in {a["address"] for a in runtime.store.participants()}


def test_a_consumer_cannot_stop_block_production(app, runtime, login):
    bob = login("bob")
    # What bob did on main: stopped mining for everyone, then stopped it at the new address.
    old = bob.post("/api/mining", json={"on": False})
    assert old.status_code == 405
    for path, payload in (("/api/admin/mining", {"on": False}),
                          ("/api/admin/mining", {"period": 3600}),
                          ("/api/admin/mining/mine", None)):
        refused = bob.post(path, json=payload)
        assert refused.status_code == 403 and "admins" in refused.get_json()["error"], path
    state = bob.get("/api/mining").get_json()
    assert state["on"] is True and state["by"] == "operator"
    assert "one node" in state["why"] and "geth" in state["why"]
    # Blocks keep coming: a send from bob is mined as before.
    head = runtime.ledger.block_number()
    carol = names(runtime)["carol"]
    sent = bob.signer.send(carol, "0.1")
    assert bob.signer.wait_tx(sent["tx_hash"])["status"] == "mined"
    assert runtime.ledger.block_number() > head
    assert runtime.backend.is_mining()
