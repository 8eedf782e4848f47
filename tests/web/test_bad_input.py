"""Bad input to the API gets a clear JSON error (4xx, a sentence, never a 500) and changes
nothing that was accepted: sign-in, registration, prepared and signed transactions, bids."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from gridbid_client import keys
from tests.common import csrf_client, offer_body, sign_bid_as, signed_raw, wait_for

ETH = 10**18


@pytest.fixture
def bob(login):
    return login("bob")


def refused(response, status: int | tuple[int, ...], words: str = "") -> dict:
    """The JSON error of a refusal: its status, a sentence that says `words`."""
    statuses = status if isinstance(status, tuple) else (status,)
    body = response.get_json()
    assert response.status_code in statuses, (response.status_code, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    assert body.get("kind"), body
    assert words.lower() in body["error"].lower(), body
    return body


def personal_sign(key, text: str) -> str:
    return "0x" + bytes(key.sign_message(encode_defunct(text=text)).signature).hex()


def names(runtime):
    return {a["name"]: a for a in runtime.demo_accounts + runtime.admin_accounts}


def test_api_needs_a_session(app):
    client = csrf_client(app)
    for method, path in [("GET", "/api/wallet"), ("POST", "/api/listings"),
                         ("POST", "/api/deals/1/close"), ("POST", "/api/tx"),
                         ("POST", "/api/tx/prepare"), ("POST", "/api/tx/sent"),
                         ("GET", "/api/tx/0x" + "ab" * 32), ("POST", "/api/listings/1/bids"),
                         ("POST", "/api/listings/1/bids/terms"), ("GET", "/api/me")]:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, path
        assert response.get_json() == {"error": "log in first", "kind": "NotLoggedIn"}
    # Every page answers the one shell; it shows the login view first (no key in a new page).
    shell = client.get("/wallet")
    assert shell.status_code == 200 and b'data-view="wallet"' in shell.data
    assert b'id="view-login"' in shell.data


@pytest.mark.parametrize("payload", [{}, {"address": "0x1234"}, {"address": 12},
                                     {"address": ["0x" + "ab" * 20]}, {"address": None}])
def test_a_login_message_needs_an_address(app, payload):
    response = csrf_client(app).post("/api/login/message", json=payload)
    refused(response, 400, "not an Ethereum address")


def test_sign_in_refusals_say_what_is_wrong(app, runtime):
    people = names(runtime)
    bob = runtime.keystore.unlock(people["bob"]["address"], people["bob"]["passphrase"])
    carol = runtime.keystore.unlock(people["carol"]["address"], people["carol"]["passphrase"])
    client = csrf_client(app)
    for payload in ({}, {"message": 5, "signature": []}, {"message": "hi"},
                    {"signature": "0x00"}, {"message": None, "signature": None}):
        refused(client.post("/api/login", json=payload), 400, "give the signed sign-in message")
    # A message and signature, but none asked for in this session.
    unasked = client.post("/api/login", json={"message": "hi", "signature": "0x" + "00" * 65})
    refused(unasked, 401, "ask for a sign-in message first")

    def asked(address: str) -> str:
        return client.post("/api/login/message", json={"address": address}).get_json()["message"]

    text = asked(bob.address)
    for message, signature, words in [
        ("not an EIP-4361 message", personal_sign(bob, "not an EIP-4361 message"), ""),
        (text, "0xzz", "signature"),
        (text, "0x" + "00" * 65, "signature"),
        (text, 12, "give the signed sign-in message"),
        (text, personal_sign(carol, text), "signed by"),  # the old "wrong passphrase"
        (text.replace("Sign in to gridbid.", "Send me your Ether."),
         personal_sign(bob, text), "signed by"),  # altered after signing
    ]:
        status = 400 if words.startswith("give") else 401
        refused(client.post("/api/login", json={"message": message, "signature": signature}),
                status, words)
    # Carol's own message, properly signed, asked for as bob: the session asked for bob.
    carols = text.replace(bob.address, carol.address)
    refused(client.post("/api/login", json={"message": carols,
                                            "signature": personal_sign(carol, carols)}),
            401, "another account")
    # A stranger signs in properly but is no participant.
    stranger = Account.create()
    text = asked(stranger.address)
    answer = client.post("/api/login", json={"message": text,
                                             "signature": personal_sign(stranger, text)})
    assert refused(answer, 403, "register first")["kind"] == "NotAParticipant"
    assert client.get("/api/me").status_code == 401  # none of it opened a session


@pytest.mark.parametrize("app", [{"LOGIN_BURST": 100}], indirect=True)  # 24 sign-in calls
def test_registration_refusals(app, runtime):
    client = csrf_client(app)
    key = Account.create()
    keystore = keys.encrypt(key, "pass-phrase-1", 2**10)

    def attempt(**fields):
        text = client.post("/api/login/message", json={"address": key.address}).get_json()[
            "message"]
        return client.post("/api/register", json={
            "message": text, "signature": personal_sign(key, text), **fields})

    refused(client.post("/api/register", json={}), 400, "give the signed sign-in message")
    refused(attempt(name="mallory", keystore="not json"), 400, "encrypted keystore")
    refused(attempt(name="mallory", keystore={"version": 3}), 400, "not an encrypted keystore")
    other = keys.encrypt(Account.create(), "pass-phrase-1", 2**10)
    refused(attempt(name="mallory", keystore=other), 400, "not of the key that signed")
    for name in ("", "a b", "x" * 33, 7, None, "<script>"):
        refused(attempt(name=name, keystore=keystore), 400, "a name is")
    refused(attempt(name="bob", keystore=keystore), 400, "reserved")  # a demo name
    made = attempt(name="mallory", keystore=keystore, serve_keystore="yes")
    assert made.status_code == 201 and made.get_json()["status"] == "pending"
    refused(attempt(name="mallory2", keystore=keystore), 400, "already registered")
    # Pending is not a participant yet, and its keystore is not served ("yes" is not true).
    assert client.get(f"/api/accounts/{key.address}/keystore").status_code == 404


def test_keystore_lookups(app, runtime):
    client = csrf_client(app)
    for junk in ("junk", "0x1234", "0x" + "zz" * 20):
        refused(client.get(f"/api/accounts/{junk}/keystore"), 400, "not an Ethereum address")
    refused(client.get(f"/api/accounts/{Account.create().address}/keystore"), 404,
            "does not serve")
    bob = names(runtime)["bob"]["address"]
    served = client.get(f"/api/accounts/{bob}/keystore")
    assert served.status_code == 200 and "crypto" in {k.lower() for k in served.get_json()}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({}, "action is one of"),
        ({"action": "mint"}, "action is one of"),
        ({"action": 5}, "action is one of"),
        ({"action": ["deposit"]}, "action is one of"),
        ({"action": "deposit"}, "deposit"),
        ({"action": "deposit", "amount_eth": "-1"}, "deposit"),
        ({"action": "deposit", "amount_eth": "abc"}, "deposit"),
        ({"action": "deposit", "amount_eth": "0"}, "deposit"),
        ({"action": "deposit", "amount_eth": "1e999"}, "deposit"),
        ({"action": "deposit", "amount_eth": ["1"]}, "deposit"),
        ({"action": "deposit", "amount_eth": True}, "deposit"),
        ({"action": "deposit", "amount_eth": "1", "market": "moon"}, "market"),
        ({"action": "deposit", "amount_eth": "1", "market": 7}, "market"),
        ({"action": "withdraw", "amount_eth": "x"}, "withdrawal"),
        ({"action": "withdraw", "amount_eth": {"a": 1}}, "withdrawal"),
        ({"action": "withdraw", "amount_eth": "1"}, "you cannot withdraw"),
        ({"action": "complete_withdrawal", "market": -1}, "market"),
        ({"action": "send", "to": "nobody", "amount_eth": "1"}, "no participant is called"),
        ({"action": "send", "to": "0x1234", "amount_eth": "1"}, "not an Ethereum address"),
        ({"action": "send", "to": 42, "amount_eth": "1"}, "not an Ethereum address"),
        ({"action": "send", "to": "alice", "amount_eth": "lots"}, "amount"),
        ({"action": "send", "to": "alice", "amount_eth": "1000000"}, "you cannot send"),
        ({"action": "send", "to": "bob", "amount_eth": "1"}, "your own address"),
        ({"action": "approve"}, "energy"),
        ({"action": "approve", "energy_wh": "many"}, "energy"),
        ({"action": "approve", "energy_wh": -5}, "energy"),
        ({"action": "close"}, "deal"),
        ({"action": "close", "deal_id": "one"}, "deal"),
        ({"action": "close", "deal_id": 999}, "no deal 999"),
    ],
)
def test_prepare_refuses_bad_actions_and_fields(app, bob, payload, words):
    status = 404 if "no deal" in words else 400
    refused(bob.post("/api/tx/prepare", json=payload), status, words)
    assert bob.get("/api/wallet").get_json()["pending"] == []  # nothing was queued


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"action": "deposit", "amount_eth": "sNaN"}, "deposit"),
        ({"action": "deposit", "amount_eth": "-sNaN"}, "deposit"),
        ({"action": "deposit", "amount_eth": "1e999999999"}, "deposit"),
        ({"action": "deposit", "amount_eth": "1e-999999999"}, "deposit"),
        ({"action": "deposit", "amount_eth": "1.0000000000000000000000000001"}, "18 decimals"),
        ({"action": "withdraw", "amount_eth": "sNaN"}, "withdrawal"),
        ({"action": "send", "to": "alice", "amount_eth": "-sNaN"}, "amount"),
        ({"action": "send", "to": "0x" + "0" * 40, "amount_eth": "1"}, "zero address"),
        ({"action": "approve", "energy_wh": "١٠"}, "whole number"),
        ({"action": "approve", "energy_wh": "１０"}, "whole number"),
        ({"action": "deposit", "amount_eth": "1", "market": "１"}, "whole number"),
        ({"action": "close", "deal_id": "١"}, "whole number"),
    ],
)
def test_amounts_integers_and_recipients_an_attacker_typed_are_refused(app, bob, payload, words):
    """F8: "sNaN", "-sNaN" and "1e999999999" answered 500, "1e-999999999" was a deposit of
    0 wei, 29 significant digits were rounded, Unicode digits passed integer fields and the
    zero address passed as a recipient: each is now a 400 that says why, and nothing queued."""
    refused(bob.post("/api/tx/prepare", json=payload), 400, words)
    assert bob.get("/api/wallet").get_json()["pending"] == []


def test_send_check_refuses_the_zero_address(app, bob):
    """F8: the zero address passed the send check too (Ether sent there is burnt)."""
    refused(bob.post("/api/send/check", json={"to": "0x" + "0" * 40, "amount_eth": "1"}), 400,
            "zero address")


def test_an_id_in_a_path_takes_ascii_digits_only(app, bob):
    """F8: Werkzeug's <int:…> matched any script's digits: /api/listings/١/… was listing 1."""
    ascii_one = bob.post("/api/listings/1/bids/terms", json={"price_wei": "1"})
    refused(ascii_one, 404, "no listing 1")
    for path in ("/api/listings/١/bids/terms", "/api/listings/%EF%BC%91/bids/terms",
                 "/api/deals/١/close"):
        other = refused(bob.post(path, json={"price_wei": "1"}), 404)
        assert "no listing" not in other["error"] and "no deal" not in other["error"], path


def test_a_withdrawal_with_nothing_to_complete_gives_the_contracts_reason(app, bob):
    response = bob.post("/api/tx/prepare", json={"action": "complete_withdrawal"})
    refused(response, 409, "you have no withdrawal or move waiting in the lot auctions' escrow")


def test_a_withdrawal_is_a_request_the_wallet_shows(app, runtime, bob):
    ledger = runtime.ledger
    address = bob.get("/api/wallet").get_json()["address"]
    bob.signer.wait_tx(bob.signer.deposit("1")["tx_hash"])
    assert ledger.escrow_free(address) == ETH
    too_much = bob.post("/api/tx/prepare", json={"action": "withdraw", "amount_eth": "2"})
    refused(too_much, 400, "you cannot withdraw")
    requested = bob.signer.withdraw("0.25")
    assert requested["status"] == "queued" and requested["sender"] == address
    wait_for(lambda: bob.get("/api/wallet").get_json()["withdrawal"], what="the request")
    wallet = bob.get("/api/wallet").get_json()
    notice = runtime.market.settings.escrow_notice_s()
    assert wallet["escrow_notice_s"] == notice == 24 * 3600 + 60 + 3600 + 1
    pending = wallet["withdrawal"]
    assert pending["amount_wei"] == str(ETH // 4) and pending["to_market"] == "out"
    head = ledger.w3.eth.get_block("latest")["timestamp"]
    assert head < pending["available_at"] <= head + notice
    assert wallet["escrow_free_wei"] == str(ETH)  # taken out only once completed
    early = bob.post("/api/tx/prepare", json={"action": "complete_withdrawal"})
    until = datetime.fromtimestamp(pending["available_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    refused(early, 409, f"the withdrawal's notice runs until {until} UTC")


def test_signed_transactions_that_are_junk_are_refused(app, runtime, bob, login):
    stranger = Account.create()
    chain_id = runtime.ledger.chain_id()
    foreign_chain = stranger.sign_transaction({
        "to": stranger.address, "value": 1, "gas": 21_000, "nonce": 0, "chainId": chain_id + 1,
        "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1})
    for raw, status, words in [
        (None, 400, "signed transaction"),
        (5, 400, "signed transaction"),
        (["0x00"], 400, "signed transaction"),
        ("", 400, "signed transaction"),
        ("0x", 400, "signed transaction"),
        ("0xzz", 400, "signed transaction"),
        ("0x1234", 400, "not usable"),
        ("0x02" + "ff" * 40, 400, "not usable"),
        ("deadbeef" * 20, 400, "not usable"),
        ("0x" + bytes(foreign_chain.raw_transaction).hex(), 403, "not by you"),
    ]:
        refused(bob.post("/api/tx", json={"raw": raw}), status, words)
    # Bob's own signature, but for another chain.
    key = bob.signer.account
    other_chain = key.sign_transaction({
        "to": stranger.address, "value": 1, "gas": 21_000, "nonce": 0, "chainId": chain_id + 1,
        "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1})
    refused(bob.post("/api/tx", json={"raw": "0x" + bytes(other_chain.raw_transaction).hex()}),
            400, f"not {chain_id}")
    assert bob.get("/api/wallet").get_json()["pending"] == []


def test_followed_hashes_must_be_hashes(app, bob):
    for tx_hash in (None, 5, "0x12", "ab" * 33, "0x" + "zz" * 32, ["0x" + "ab" * 32]):
        refused(bob.post("/api/tx/sent", json={"tx_hash": tx_hash}), 400, "transaction hash")
    refused(bob.get("/api/tx/0x" + "ab" * 32), 404, "no transaction")
    refused(bob.get("/api/tx/junk"), (400, 404), "transaction")


def test_listing_refusals(app, runtime, login):
    bob, alice = login("bob"), login("alice")
    alice_addr = names(runtime)["alice"]["address"]
    asked = {"energy_wh": 10, "start_price_wei": "1000", "duration_s": 60}
    refused(bob.post("/api/listings/terms", json=asked), 403, "only producers")
    not_json = alice.post("/api/listings/terms", data="energy_wh=10", content_type="text/plain")
    refused(not_json, 400, "energy")
    for field, value in (("energy_wh", "ten"), ("energy_wh", [10]), ("start_price_wei", -1),
                         ("duration_s", "1h"), ("duration_s", 10**9)):
        refused(alice.post("/api/listings/terms", json={**asked, field: value}), 400)
    # F8: 10 Wh at 99 wei/kWh would lock 0 wei.
    refused(alice.post("/api/listings/terms", json={**asked, "start_price_wei": "99"}), 400,
            "costs nothing")
    wait_for(lambda: runtime.ledger.token_balance(alice_addr) >= 10, what="alice's tokens")
    listing = offer_body(alice, alice.signer.account, 10, 1000, 60)
    for body, words in [({**listing, "offer": "an offer"}, "give the offer you signed"),
                        ({**listing, "offer": {"seller": alice_addr}}, "lacks"),
                        ({**listing, "signature": "0x12"}, "signature"),
                        ({**listing, "energy_wh": 11}, "energyWh")]:
        refused(alice.post("/api/listings", json=body), 400, words)
    # An offer signed by another key (bob's), and alice's offer handed in by bob.
    bobs_offer = offer_body(alice, bob.signer.account, 10, 1000, 60)
    refused(alice.post("/api/listings", json=bobs_offer), 403, "not signed by your key")
    refused(bob.post("/api/listings", json=listing), 403, "not signed by your key")
    refused(alice.post("/api/listings", json=listing), 400, "approval")  # none, allowance short
    for approval in (5, "0xzz", "0x1234"):
        refused(alice.post("/api/listings", json={**listing, "approval": approval}), 400,
                "approval")
    for permit, words in [(5, "permit"), ({"value": 10, "deadline": 1,
                                           "signature": "0x" + "00" * 65}, "deadline")]:
        refused(alice.post("/api/listings", json={**listing, "permit": permit}), 400, words)
    # An approval bob signed, handed in by alice; a transfer passed off as an approval.
    bobs = signed_raw(bob.signer, "approve", energy_wh=10)
    refused(alice.post("/api/listings", json={**listing, "approval": bobs}), 403, "not by you")
    send = signed_raw(alice.signer, "send", to="bob", amount_eth="0.01")
    refused(alice.post("/api/listings", json={**listing, "approval": send}), 400,
            "approve(escrow")
    assert alice.get("/api/listings").get_json()["listings"] == []


def test_bid_refusals(app, runtime, login):
    alice, bob = login("alice"), login("bob")
    alice_addr = names(runtime)["alice"]["address"]
    key = bob.signer.account
    refused(bob.post("/api/listings/999/bids/terms", json={"price_wei": "1"}), 404,
            "no listing 999")
    wait_for(lambda: runtime.ledger.token_balance(alice_addr) >= 10, what="alice's tokens")
    listing = alice.signer.create_listing(10, 1000, 60)
    lid = listing["id"]
    for price in (None, "abc", -1, [1000], True, "1e3", 2**300):
        refused(bob.post(f"/api/listings/{lid}/bids/terms", json={"price_wei": price}), 400,
                "bid")
    bob.signer.wait_tx(bob.signer.deposit("0.01")["tx_hash"])
    terms = bob.post(f"/api/listings/{lid}/bids/terms", json={"price_wei": "1000"}).get_json()
    bid, signature = sign_bid_as(key, terms)
    # A signed bid for a listing that does not exist is answered as such.
    refused(bob.post("/api/listings/999/bids", json={"bid": bid, "signature": signature}),
            404, "no listing 999")
    for body, words in [
        ({}, "give the bid you signed"),
        ({"bid": "a bid", "signature": signature}, "give the bid you signed"),
        ({"bid": [1, 2], "signature": signature}, "give the bid you signed"),
        ({"bid": {"offer": listing["offer_hash"]}, "signature": signature}, "lacks"),
        ({"bid": bid}, "signature"),
        ({"bid": bid, "signature": 5}, "signature"),
        ({"bid": bid, "signature": "0xzz"}, "signature"),
        ({"bid": bid, "signature": signature[:-2]}, "signature"),
        ({"bid": bid, "signature": "0x" + "00" * 65}, "sign"),
        ({"bid": {**bid, "priceWeiPerKWh": "abc"}, "signature": signature}, "priceWeiPerKWh"),
        ({"bid": {**bid, "priceWeiPerKWh": [1000]}, "signature": signature}, "priceWeiPerKWh"),
        ({"bid": {**bid, "priceWeiPerKWh": -1}, "signature": signature}, "priceWeiPerKWh"),
        ({"bid": {**bid, "maxWh": 2**256}, "signature": signature}, "maxWh"),
        ({"bid": {**bid, "expiry": 2**64}, "signature": signature}, "expiry"),
        ({"bid": {**bid, "nonce": None}, "signature": signature}, "nonce"),
        ({"bid": {**bid, "buyer": "0x12"}, "signature": signature}, "not an Ethereum address"),
        ({"bid": {**bid, "buyerMeter": 7}, "signature": signature}, "not an Ethereum address"),
        ({"bid": {**bid, "offer": "0x12"}, "signature": signature}, "32 bytes"),
    ]:
        refused(bob.post(f"/api/listings/{lid}/bids", json=body), (400, 403), words)
    # Well formed, properly signed, but not this listing's terms.
    for change, words in [({"maxWh": 5}, "maxWh"), ({"buyerMeter": key.address}, "buyerMeter"),
                          ({"offer": "0x" + "11" * 32}, "offer"), ({"expiry": 1}, "expiry")]:
        changed, sig = sign_bid_as(key, terms, **change)
        refused(bob.post(f"/api/listings/{lid}/bids", json={"bid": changed, "signature": sig}),
                400, words)
    view = bob.get(f"/api/listings/{lid}").get_json()
    assert view["bid_count"] == 0  # none of it was taken


def test_close_refusals(app, runtime, bob):
    for raw in (5, "0xzz", "0x1234", ["0x00"]):
        refused(bob.post("/api/deals/1/close", json={"raw": raw}), 400, "close")
    refused(bob.post("/api/deals/1/close", json={}), 404, "no deal 1")
    refused(bob.post("/api/deals/one/close", json={}), 404)


def test_other_bad_bodies(app, runtime, login):
    bob, admin = login("bob"), login("admin")
    assert bob.get("/api/nope").get_json()["kind"] == "NotFound"
    refused(admin.post("/api/admin/mining", json={"on": "yes"}), 400, "true or false")
    refused(admin.post("/api/admin/registrations/junk/approve", json={"role": "consumer"}),
            400, "not an Ethereum address")
    refused(admin.post(f"/api/admin/registrations/{Account.create().address}/approve",
                       json={"role": "consumer"}), 404, "no pending registration")
    refused(bob.post("/api/send/check", json={"to": [], "amount_eth": {}}), 400)


JUNK = [None, True, 0, -1, 1.5, 2**300, "", "x", "0x", "0x" + "zz" * 32, [], {}, [1], {"a": 1},
        "0x" + "00" * 65, "0x" + "ff" * 200]
FIELDS = {
    "/api/login/message": ["address"],
    "/api/login": ["message", "signature"],
    "/api/register": ["name", "keystore", "serve_keystore", "message", "signature"],
    "/api/tx": ["raw"],
    "/api/tx/sent": ["tx_hash", "label"],
    "/api/listings/terms": ["energy_wh", "start_price_wei", "duration_s"],
    "/api/listings": ["offer", "signature", "approval", "permit", "energy_wh",
                      "start_price_wei"],
    "/api/listings/1/cancel": ["approval", "permit"],
    "/api/listings/1/bids/terms": ["price_wei"],
    "/api/listings/1/bids": ["bid", "signature"],
    "/api/deals/1/close": ["raw"],
    "/api/send/check": ["to", "amount_eth"],
}
ACTIONS = ["deposit", "withdraw", "cancel_withdrawal", "complete_withdrawal", "send", "approve",
           "close", "cancel_listing", None, 7]


@pytest.mark.parametrize("app", [{"LOGIN_BURST": 10_000}], indirect=True)
def test_no_junk_in_any_field_gets_a_500(app, login):
    """Every field of every endpoint that takes input, each kind of junk: no 500, and each
    refusal a 4xx with a sentence."""
    alice = login("alice")
    answers = []
    for path, fields in FIELDS.items():
        answers += [(path, field, value, alice.post(path, json={field: value}))
                    for field in fields for value in JUNK]
        answers += [(path, "body", value, alice.post(path, json=value)) for value in JUNK]
    for action, field, value in itertools.product(
            ACTIONS, ["amount_eth", "market", "to", "energy_wh", "deal_id", "listing_id"], JUNK):
        answers.append((action, field, value,
                        alice.post("/api/tx/prepare", json={"action": action, field: value})))
    for path in ("/api/tx/" + "x" * 500, "/api/accounts/%00/keystore", "/api/deals/0",
                 "/api/listings/99999999999999999999"):
        answers.append((path, "", None, alice.get(path)))
    # Some junk is fine somewhere (1.5 ETH is a deposit): never a 500, and a refusal says why.
    wrong = [(where, field, value, answer.status_code) for where, field, value, answer in answers
             if answer.status_code >= 500
             or (answer.status_code >= 400 and not (answer.get_json() or {}).get("error"))]
    assert sum(a.status_code >= 400 for *_, a in answers) > 0.9 * len(answers)
    assert not wrong, wrong
