"""Sessions, CSRF, sign-in limits and replays, logout, Socket.IO binding, cross-account
refusals (signed transactions and bids of another key), registration and admin."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from contracts.bindings import sign_typed
from gridbid_client.client import Client, ClientError
from gridbid_client.transport import FlaskTransport
from tests.common import csrf_client, sign_bid_as, signed_raw, wait_for
from web.extensions import socketio

ETH = 10**18


def names(runtime):
    return {a["name"]: a["address"] for a in runtime.demo_accounts + runtime.admin_accounts}


def personal_sign(key, text: str) -> str:
    return "0x" + bytes(key.sign_message(encode_defunct(text=text)).signature).hex()


def key_of(runtime, name: str):
    """A demo account's key, from the tests' cheap keystore (as its owner's page unlocks it)."""
    found = {a["name"]: a for a in runtime.demo_accounts + runtime.admin_accounts}[name]
    return runtime.keystore.unlock(found["address"], found["passphrase"])


def signed_message(client, key) -> tuple[str, str]:
    """The sign-in message this client's session is given for key, and key's signature."""
    text = client.post("/api/login/message", json={"address": key.address}).get_json()["message"]
    return text, personal_sign(key, text)


def test_session_cookie_is_httponly_and_samesite(app, runtime):
    client = csrf_client(app)
    text, signature = signed_message(client, key_of(runtime, "bob"))
    response = client.post("/api/login", json={"message": text, "signature": signature})
    assert response.status_code == 200, response.get_json()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, runtime, login):
    bob = login("bob")
    bob_addr = names(runtime)["bob"]
    raw = signed_raw(bob.signer, "deposit", amount_eth="1")  # bob's own signed deposit
    token = bob.environ_base.pop("HTTP_X_CSRF_TOKEN")
    bare = bob.post("/api/tx", json={"raw": raw})
    assert bare.status_code == 403 and bare.get_json()["kind"] == "CsrfRefused"
    assert "reload the page" in bare.get_json()["error"]
    forged = bob.post("/api/tx", json={"raw": raw}, headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert forged.status_code == 403
    for path in ("/api/tx/prepare", "/api/logout", "/api/listings/1/bids"):
        assert bob.post(path, json={"action": "deposit", "amount_eth": "1"}).status_code == 403
    assert bob.get("/api/wallet").status_code == 200  # reading needs no token
    assert bob.get("/api/wallet").get_json()["pending"] == []
    assert runtime.ledger.escrow_free(bob_addr) == 0
    ok = bob.post("/api/tx", json={"raw": raw}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 202 and ok.get_json()["status"] == "queued"
    wait_for(lambda: runtime.ledger.escrow_free(bob_addr) == ETH, what="the deposit")


def test_bad_sign_ins_are_cheap_and_limited_per_client_never_per_account(app, runtime):
    """24 bad signatures at once for bob from one client: 429 after the burst, each answered
    fast (a signature check, no passphrase hashing on the server); bob then signs in at
    once from his own machine: nobody can lock an account out."""
    bob = key_of(runtime, "bob")
    forger = Account.create()  # the attacker signs with a key of its own
    attacker = "203.0.113.9"

    def attempt(_):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = attacker
        client.environ_base["HTTP_X_CSRF_TOKEN"] = client.get("/api/csrf").get_json()["csrf"]
        text = client.post("/api/login/message", json={"address": bob.address})
        if text.status_code != 200:
            return text
        text = text.get_json()["message"]
        return client.post("/api/login", json={"message": text,
                                               "signature": personal_sign(forger, text)})

    began = time.monotonic()
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(attempt, range(24)))
    spent = time.monotonic() - began
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {401, 429}, statuses  # refused, then limited: never a sign-in
    assert statuses[429] >= 24 - app.config["LOGIN_BURST"] // 2, statuses  # two calls each
    limited = next(a for a in answers if a.status_code == 429)
    assert "too many attempts from your address" in limited.get_json()["error"]
    assert int(limited.headers["Retry-After"]) >= 1
    assert spent < 10, f"24 refusals took {spent:.1f} s"
    # The owner, from another client: signed in at once.
    own = csrf_client(app)
    text, signature = signed_message(own, bob)
    answer = own.post("/api/login", json={"message": text, "signature": signature})
    assert answer.status_code == 200 and answer.get_json()["address"] == bob.address
    # The attacker's client is still limited, whoever it claims to be.
    again = app.test_client()
    again.environ_base["REMOTE_ADDR"] = attacker
    again.environ_base["HTTP_X_CSRF_TOKEN"] = again.get("/api/csrf").get_json()["csrf"]
    assert again.post("/api/login/message", json={"address": bob.address}).status_code == 429


def test_a_replayed_sign_in_is_refused(app, runtime):
    bob = key_of(runtime, "bob")
    first = csrf_client(app)
    text, signature = signed_message(first, bob)
    signed = {"message": text, "signature": signature}
    opened = first.post("/api/login", json=signed)
    assert opened.status_code == 200
    first.environ_base["HTTP_X_CSRF_TOKEN"] = opened.get_json()["csrf"]
    # The same message and signature again: on the same session, once logged out, on a
    # session that asked for a message of its own, and on one that asked for none.
    assert first.post("/api/login", json=signed).status_code == 401
    out = first.post("/api/logout")
    first.environ_base["HTTP_X_CSRF_TOKEN"] = out.get_json()["csrf"]
    assert first.post("/api/login", json=signed).status_code == 401
    other = csrf_client(app)
    signed_message(other, bob)  # its own nonce, different from the replayed message's
    replay = other.post("/api/login", json=signed)
    assert replay.status_code == 401 and "nonce" in replay.get_json()["error"]
    assert csrf_client(app).post("/api/login", json=signed).status_code == 401
    assert first.get("/api/me").status_code == 401 and other.get("/api/me").status_code == 401


def test_logout_closes_the_sessions_sockets_and_the_session_cannot_act(app, runtime, login):
    carol = login("carol")
    carol_addr = names(runtime)["carol"]
    market = socketio.test_client(app, namespace="/market", flask_test_client=carol)
    wallet = socketio.test_client(app, namespace="/wallet", flask_test_client=carol)
    assert market.is_connected("/market") and wallet.is_connected("/wallet")
    # Another client holding a copy of the same cookie, as a stolen cookie would be.
    thief = csrf_client(app)
    thief.set_cookie("session", carol.get_cookie("session").value)
    assert thief.get("/api/wallet").status_code == 200
    raw = signed_raw(carol.signer, "deposit", amount_eth="1")  # signed before the logout

    out = carol.post("/api/logout")
    assert out.status_code == 200 and out.get_json()["ok"] is True
    wait_for(lambda: not market.is_connected("/market") and not wallet.is_connected("/wallet"),
             what="the session's sockets to close")
    assert thief.get("/api/wallet").status_code == 401  # the copy ended with the session
    assert thief.post("/api/tx", json={"raw": raw}).status_code in (401, 403)
    stolen = socketio.test_client(app, namespace="/wallet", flask_test_client=thief)
    assert not stolen.is_connected("/wallet")
    carol.environ_base["HTTP_X_CSRF_TOKEN"] = out.get_json()["csrf"]
    assert carol.post("/api/tx", json={"raw": raw}).status_code == 401
    assert carol.post("/api/tx/prepare", json={"action": "deposit",
                                               "amount_eth": "1"}).status_code == 401
    late = socketio.test_client(app, namespace="/wallet", flask_test_client=carol)
    assert not late.is_connected("/wallet")
    assert runtime.ledger.escrow_free(carol_addr) == 0


def test_a_socket_opened_before_the_idle_timeout_closes_when_the_session_idles_out(app, runtime,
                                                                                   login):
    # Found in review: SESSION_IDLE_S ended the session for HTTP only; a socket opened before
    # (the page's, or one a copied cookie opened) kept streaming carol's wallet forever.
    carol = login("carol")
    sockets = {ns: socketio.test_client(app, namespace=ns, flask_test_client=carol)
               for ns in ("/market", "/wallet", "/grid")}
    assert all(client.is_connected(ns) for ns, client in sockets.items())
    app.config["SESSION_IDLE_S"] = 1  # carol has been idle for a second already
    time.sleep(1.2)
    assert carol.get("/api/wallet").status_code == 401  # the session is over for HTTP …
    wait_for(lambda: not any(client.is_connected(ns) for ns, client in sockets.items()),
             timeout=10, what="the idle session's sockets to close")  # … and for its sockets


@pytest.mark.parametrize("namespace", ["/market", "/wallet", "/grid"])
def test_live_channels_refuse_a_browser_that_is_not_logged_in(app, runtime, namespace):
    anonymous = socketio.test_client(app, namespace=namespace)
    assert not anonymous.is_connected(namespace)


def test_the_default_namespace_refuses_anonymous_connections(app, runtime, login):
    """F8: the Socket.IO default namespace "/" accepted anonymous connections (python-socketio
    takes "/" unless a handler refuses): now only a signed-in session connects there, and the
    page's channels still connect for a signed-in user."""
    anonymous = socketio.test_client(app, namespace="/")
    assert not anonymous.is_connected("/")
    carol = login("carol")
    signed = socketio.test_client(app, namespace="/", flask_test_client=carol)
    assert signed.is_connected("/") and signed.get_received("/") == []  # nothing lives there
    channels = {ns: socketio.test_client(app, namespace=ns, flask_test_client=carol)
                for ns in ("/market", "/wallet", "/grid")}
    assert all(client.is_connected(ns) for ns, client in channels.items())
    carol.post("/api/logout")
    assert not signed.is_connected("/")  # logout closes it like the others


def test_nobody_can_act_for_another_account(app, runtime, login, clock):
    people = names(runtime)
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    wait_for(lambda: runtime.ledger.token_balance(people["alice"]) >= 20, what="alice's tokens")
    listing = alice.signer.create_listing(10, 1000, 60)
    lid = listing["id"]
    # bob cannot cancel alice's listing.
    refused = bob.post(f"/api/listings/{lid}/cancel")
    assert refused.status_code == 403 and "only the seller" in refused.get_json()["error"]
    carol.signer.wait_tx(carol.signer.deposit("1")["tx_hash"])
    assert runtime.ledger.escrow_free(people["carol"]) == ETH
    # A transaction carol signed, handed in by bob's session: refused, nothing queued.
    carols = signed_raw(carol.signer, "withdraw", amount_eth="1")
    taken = bob.post("/api/tx", json={"raw": carols})
    assert taken.status_code == 403 and "not by you" in taken.get_json()["error"]
    assert bob.get("/api/wallet").get_json()["pending"] == []
    assert carol.get("/api/wallet").get_json()["withdrawal"] is None
    # A withdrawal bob prepares is his own: he has no escrow to take.
    own = bob.post("/api/tx/prepare", json={"action": "withdraw", "amount_eth": "1",
                                            "account": people["carol"]})
    assert own.status_code == 400 and "you cannot withdraw" in own.get_json()["error"]
    assert runtime.ledger.escrow_free(people["carol"]) == ETH
    # Bids: bob's own terms need bob's escrow; carol's signed bid from bob's session is refused.
    mine = bob.post(f"/api/listings/{lid}/bids/terms", json={"price_wei": "1000",
                                                            "bidder": people["carol"]})
    assert mine.status_code == 400 and "escrow" in mine.get_json()["error"]  # bob's
    terms = carol.post(f"/api/listings/{lid}/bids/terms", json={"price_wei": "1000"}).get_json()
    bid, signature = sign_bid_as(carol.signer.account, terms)
    as_carol = bob.post(f"/api/listings/{lid}/bids", json={"bid": bid, "signature": signature})
    assert as_carol.status_code == 403 and "not signed by your key" in as_carol.get_json()["error"]
    forged, forged_sig = sign_bid_as(bob.signer.account, terms)  # carol's terms, bob's key
    by_bob = carol.post(f"/api/listings/{lid}/bids", json={"bid": forged,
                                                           "signature": forged_sig})
    assert by_bob.status_code == 403 and "not signed by your key" in by_bob.get_json()["error"]
    # An altered bid (price raised after signing) is not carol's.
    altered = {**bid, "priceWeiPerKWh": "2000"}
    changed = carol.post(f"/api/listings/{lid}/bids", json={"bid": altered,
                                                            "signature": signature})
    assert changed.status_code == 403 and "not signed by your key" in changed.get_json()["error"]
    assert bob.get(f"/api/listings/{lid}").get_json()["bid_count"] == 0
    # A send names its recipient only; the sender is the session's account, whatever is said.
    before = runtime.ledger.eth_balance(people["carol"])
    sent = bob.signer.transact("send", to=people["alice"], amount_eth="0.1",
                               **{"from": people["carol"]})
    assert sent["sender"] == people["bob"]
    bob.signer.wait_tx(sent["tx_hash"])
    assert runtime.ledger.eth_balance(people["carol"]) == before
    # carol's own bid stands, once: the same signed bid again is a replay.
    assert carol.post(f"/api/listings/{lid}/bids",
                      json={"bid": bid, "signature": signature}).status_code == 201
    replay = carol.post(f"/api/listings/{lid}/bids", json={"bid": bid, "signature": signature})
    assert replay.status_code == 400 and "already placed" in replay.get_json()["error"]
    # The deal of carol's win can be closed by carol or alice, not bob, nor with carol's
    # signed closeDeal handed in by bob.
    clock.advance(61)
    deal = wait_for(lambda: next((d for d in carol.get("/api/deals").get_json()["deals"]
                                  if d["status"] == "active"), None), what="the deal")
    assert bob.post(f"/api/deals/{deal['id']}/close").status_code == 403
    assert bob.post("/api/tx/prepare", json={"action": "close",
                                             "deal_id": deal["id"]}).status_code == 403
    carols_close = signed_raw(carol.signer, "close", deal_id=deal["id"])
    intruder = bob.post(f"/api/deals/{deal['id']}/close", json={"raw": carols_close})
    assert intruder.status_code == 403
    assert bob.post("/api/tx", json={"raw": carols_close}).status_code == 403
    assert carol.get(f"/api/deals/{deal['id']}").get_json()["status"] == "active"


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


def test_admin_sees_health_approves_registrations_and_enrolls_meters(app, runtime, login):
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
    # The runtime's own loops may mine a block meanwhile (a mint): the node's head as the
    # page read it lies between the heads before and after.
    before = runtime.ledger.block_number()
    health = admin.get("/api/admin/health").get_json()
    assert health["node"]["ok"] and before <= health["node"]["block"] <= \
        runtime.ledger.block_number()
    assert {b["board_id"] for b in health["boards"]} == {"pv-alice", "load-bob", "load-carol"}
    assert all(b["online"] and b["relays"] == [False] for b in health["boards"])
    listed = {a["name"]: a for a in admin.get("/api/admin/accounts").get_json()["accounts"]}
    assert listed["alice"]["meter_enrolled"] and listed["alice"]["meter_kind"] == "producer"

    # Admins create no keys: dave registers his own (encrypted where he is), the admin
    # approves him, and only then does he sign in.
    dave_key = Account.create()
    dave = Client(FlaskTransport(app.test_client()), dave_key)
    made = dave.register("dave", "dave-pass-1", scrypt_n=2**10)
    assert made == {"address": dave_key.address, "name": "dave", "status": "pending"}
    with pytest.raises(ClientError, match="waits for the admin") as waiting:
        dave.login()
    assert waiting.value.status == 403
    eve = Client(FlaskTransport(app.test_client()), Account.create())
    with pytest.raises(ClientError, match="already registered") as taken:
        eve.register("dave", "eve-pass-12", scrypt_n=2**10)
    assert taken.value.status == 400
    pending = admin.get("/api/admin/registrations").get_json()["registrations"]
    assert [(r["name"], r["address"]) for r in pending] == [("dave", dave_key.address)]
    assert all("passphrase" not in r for r in pending)
    approve = f"/api/admin/registrations/{dave_key.address}/approve"
    assert bob.post(approve, json={"role": "consumer"}).status_code == 403
    assert admin.post(approve, json={"role": "admin"}).status_code == 400
    approved = admin.post(approve, json={"role": "consumer"})
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert admin.post(approve, json={"role": "consumer"}).status_code == 404  # once
    # dave signs in, but cannot bid before a meter board measures him.
    assert dave.login()["role"] == "consumer"
    dave_client, dave = dave, dave_key.address

    meter = Account.create().address
    asked = admin.post("/api/admin/meters", json={"meter": meter, "owner": "dave",
                                                   "role": "consumer", "rated_power_w": 500})
    assert asked.status_code == 202, asked.get_json()
    assert asked.get_json()["owner"] == dave and not asked.get_json()["enrolled"]
    # The meter is enrolled only once dave signs his consent to it (F3).
    (consent,) = dave_client.get("/api/meters/consent")["consents"]
    assert (consent["meter"], consent["rated_power_w"]) == (meter, 500)
    dave_client.post("/api/meters/consent", {
        "meter": meter, "deadline": consent["deadline"],
        "signature": "0x" + sign_typed(dave_key, consent["typed_data"]).hex()})
    wait_for(lambda: runtime.ledger.meter_of(meter)["owner"] == dave, what="the enrollment")
    gone = admin.post(f"/api/admin/meters/{meter}/disenroll")
    assert gone.status_code == 200 and gone.get_json()["enrolled"] is False
    again = admin.post(f"/api/admin/meters/{meter}/disenroll")
    # The contract's refusal of the admin's own mistake: a 409 sentence, not a 502 (issue 17).
    assert again.status_code == 409, again.get_json()
    assert f"meter {meter} is not enrolled" in again.get_json()["error"]
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


def test_a_deal_is_seen_only_by_its_parties_and_admins(app, runtime, login, clock):
    """F8: every participant could read every deal (GET /api/deals/<id>, the /market
    snapshot and its deal_updated pushes); now only the buyer, the seller and admins do."""
    people = names(runtime)
    alice, bob, carol, admin = login("alice"), login("bob"), login("carol"), login("admin")
    wait_for(lambda: runtime.ledger.token_balance(people["alice"]) >= 10, what="alice's tokens")
    carol.signer.wait_tx(carol.signer.deposit("0.1")["tx_hash"])
    watch = {name: socketio.test_client(app, namespace="/market", flask_test_client=client)
             for name, client in (("bob", bob), ("carol", carol), ("admin", admin))}
    listing = alice.signer.create_listing(10, 1000, 30)
    carol.signer.bid(listing["id"], 2000)
    clock.advance(31)
    deal = wait_for(lambda: carol.get("/api/deals").get_json()["deals"], what="the deal")[0]
    seen = bob.get(f"/api/deals/{deal['id']}")
    assert seen.status_code == 403 and "parties" in seen.get_json()["error"]
    assert bob.get("/api/deals").get_json()["deals"] == []
    for who in (carol, alice, admin):
        assert who.get(f"/api/deals/{deal['id']}").get_json()["buyer"] == people["carol"]

    got = {name: [] for name in watch}

    def pushed(name):
        got[name] += [e["args"][0] for e in watch[name].get_received("/market")
                      if e["name"] == "deal_updated"]
        return got[name]

    wait_for(lambda: pushed("carol") and pushed("admin"), what="the deal's pushes")
    assert pushed("bob") == []
    late = socketio.test_client(app, namespace="/market", flask_test_client=bob)
    (snapshot,) = [e["args"][0] for e in late.get_received("/market") if e["name"] == "snapshot"]
    assert snapshot["deals"] == []
