"""An outsider's and a participant's attacks on the keys-stay-with-their-owners portal: each
does what the attacker would and checks they get nothing."""

from __future__ import annotations

import io
import secrets
import time

import pytest

from geth_private import watching
from tests.common import signed_raw, wait_for


def _hash() -> str:
    return "0x" + secrets.token_hex(32)


def test_a_wallet_report_names_its_real_sender_and_cannot_flood_the_watch(app, runtime, login):
    """/api/tx/sent: carol claims bob's transaction, then floods the portal with made-up
    hashes; neither is followed as hers, and what she made up is let go."""
    bob, carol = login("bob"), login("carol")
    carol_addr = carol.signer.account.address
    # bob's own wallet sends straight to the node (as an EIP-1193 wallet does): the portal has
    # no record of it, so carol's report would be the first it hears.
    raw = signed_raw(bob.signer, "send", to=carol_addr, amount_eth="0.01")
    bob_hash = runtime.backend.w3.eth.send_raw_transaction(raw).hex()
    bob_hash = bob_hash if bob_hash.startswith("0x") else "0x" + bob_hash
    claimed = carol.post("/api/tx/sent", json={"tx_hash": bob_hash})
    assert claimed.status_code == 403, claimed.get_json()
    assert runtime.ledger.txm.record(bob_hash) is None  # not followed as carol's
    assert bob.post("/api/tx/sent", json={"tx_hash": bob_hash}).status_code == 202
    assert carol.post("/api/tx/sent", json={"tx_hash": bob_hash}).status_code == 403

    made_up = [_hash() for _ in range(watching.UNSEEN_MAX)]
    for tx_hash in made_up:
        assert carol.post("/api/tx/sent", json={"tx_hash": tx_hash}).status_code == 202
    flood = carol.post("/api/tx/sent", json={"tx_hash": _hash()})
    assert flood.status_code == 403 and "not seen" in flood.get_json()["error"]
    txm = runtime.ledger.txm
    # Minutes later, hashes the node never saw are dropped: nothing polls them any more.
    for tx_hash in made_up:
        record = txm.record(tx_hash)
        record.created -= watching.UNSEEN_S + 1
        record.submitted -= txm.resubmit_after + 1
    txm.poll()
    assert all(txm.record(h).status == "failed" for h in made_up)
    assert not any(watching.unseen(r) for r in txm._inflight[carol_addr].values())
    assert carol.post("/api/tx/sent", json={"tx_hash": _hash()}).status_code == 202


def test_a_reported_hash_cannot_swallow_the_owners_signed_bytes(app, runtime, login):
    """Whoever reports a hash first cannot stop the signed bytes of it from being sent."""
    bob = login("bob")
    raw = signed_raw(bob.signer, "deposit", amount_eth="1")
    from geth_private.signed import decode_signed

    call = decode_signed(raw)
    assert bob.post("/api/tx/sent", json={"tx_hash": call.tx_hash}).status_code == 202
    queued = bob.post("/api/tx", json={"raw": raw})
    assert queued.status_code == 202
    record = wait_for(lambda: (r := runtime.ledger.txm.record(call.tx_hash))
                      and r.status == "mined" and r, what="the deposit mined")
    assert record.sender == bob.signer.account.address


def test_a_pre_eip155_transaction_is_refused(app, runtime, login):
    """A legacy transaction without a chain id is valid on every chain: not taken."""
    bob = login("bob")
    key = bob.signer.account
    tx = {"to": login("carol").signer.account.address, "value": 1, "gas": 21000,
          "gasPrice": 10**10, "nonce": runtime.backend.w3.eth.get_transaction_count(key.address)}
    raw = "0x" + bytes(key.sign_transaction(tx).raw_transaction).hex()
    refused = bob.post("/api/tx", json={"raw": raw})
    assert refused.status_code == 400 and "chain" in refused.get_json()["error"]
    time.sleep(0.2)
    assert runtime.ledger.txm.pending(key.address) == []


def test_a_huge_body_is_refused_before_it_is_read(app, runtime):
    """A body of many MiB (a "keystore", a sign-in, a JSON-RPC batch) is a clear 413 / JSON-RPC
    error, never parsed into the portal's memory."""
    client = app.test_client()
    token = client.get("/api/csrf").get_json()["csrf"]
    huge = b'{"name": "x", "keystore": {"crypto": "' + b"a" * (4 << 20) + b'"}}'
    for path in ("/api/register", "/api/login/message", "/api/login"):
        answer = client.post(path, data=huge, content_type="application/json",
                             headers={"X-CSRF-Token": token})
        assert answer.status_code == 413, path
        assert answer.get_json()["kind"] == "RequestEntityTooLarge"
    # No Content-Length (a chunked upload): the limit still holds on /rpc.
    batch = b"[" + b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},' * 40_000 + b"1]"
    answer = client.post("/rpc", input_stream=io.BytesIO(batch), content_type="application/json",
                         environ_overrides={"wsgi.input_terminated": True})
    error = answer.get_json()["error"]
    assert answer.status_code == 200 and error["code"] == -32600 and "bytes" in error["message"]


def _sign_in_as(client, key, **headers):
    """Ask for a sign-in message with these headers, sign it with key, send it back."""
    from eth_account.messages import encode_defunct

    token = client.get("/api/csrf", headers=headers).get_json()["csrf"]
    headers = {**headers, "X-CSRF-Token": token}  # the cookie is the host's: so is its token
    asked = client.post("/api/login/message", json={"address": key.address}, headers=headers)
    if asked.status_code != 200:
        return asked
    text = asked.get_json()["message"]
    signature = "0x" + bytes(key.sign_message(encode_defunct(text=text)).signature).hex()
    return client.post("/api/login", json={"message": text, "signature": signature},
                       headers=headers)


def _demo_key(runtime, name):
    found = {a["name"]: a for a in runtime.demo_accounts}[name]
    return runtime.keystore.unlock(found["address"], found["passphrase"])


def test_a_phishing_site_cannot_have_the_portal_write_its_name_in_a_sign_in(app, runtime):
    """evil.example relays its visitors' sign-ins with its own Host: the message would name
    evil.example, so the visitor's wallet would see nothing wrong. Refused; and with no proxy
    trusted, X-Forwarded-Host changes nothing either."""
    from tests.common import csrf_client

    key = _demo_key(runtime, "bob")
    relayed = _sign_in_as(csrf_client(app), key, Host="evil.example")
    assert relayed.status_code == 400 and relayed.get_json()["kind"] == "UnknownHost"
    client = csrf_client(app)
    asked = client.post("/api/login/message", json={"address": key.address},
                        headers={"X-Forwarded-Host": "evil.example"})
    assert asked.get_json()["message"].startswith("localhost wants you")
    assert client.get("/api/me").status_code == 401


def test_the_portal_signs_in_only_at_the_hosts_it_is_served_at(app, runtime):
    from tests.common import csrf_client

    app.config["PORTAL_HOSTS"] = "grid.example.org, grid.example.org:8443"
    key = _demo_key(runtime, "bob")
    client = csrf_client(app)
    assert _sign_in_as(client, key, Host="grid.example.org:8443").status_code == 200
    assert _sign_in_as(csrf_client(app), key, Host="localhost").status_code == 400


# 30 W at 600x: 5 Wh a second; STEP_WH 1000: no delivery report goes out before the close.
SLOW_REPORTS = {"LOAD_W": 30, "STEP_WH": 1000}


@pytest.mark.parametrize("app", [SLOW_REPORTS], indirect=True)
@pytest.mark.parametrize("path", ["/api/tx", "/rpc"])
def test_a_buyers_own_close_cannot_skip_the_last_delivery_report(app, runtime, login, clock,
                                                                  path):
    """carol signs closeDeal herself and sends it as a plain transaction (not Close
    connection), hoping the Wh drawn since the last report go unpaid: the portal sends it as
    Close connection does, after the final report, and the seller is paid for every Wh."""
    alice, carol = login("alice"), login("carol")
    carol.signer.wait_tx(carol.signer.deposit("1")["tx_hash"])
    wait_for(lambda: runtime.ledger.token_balance(alice.signer.account.address) >= 40,
             what="tokens")
    listing = alice.signer.create_listing(40, 10**16, 30)
    carol.signer.bid(listing["id"], 10**16)
    wait_for(lambda: runtime.txm.record(runtime.store.listing(listing["id"])["approval_tx"])
             .status == "mined", what="the approval")
    clock.advance(31)
    deal = wait_for(lambda: next((d for d in carol.signer.deals() if d["status"] == "active"),
                                 None), what="the deal")
    wait_for(lambda: carol.signer.deal(deal["id"])["delivered_wh"] >= 3, what="some delivery")
    raw = signed_raw(carol.signer, "close", deal_id=deal["id"])
    if path == "/rpc":
        answer = carol.post("/rpc", json={"jsonrpc": "2.0", "id": 1,
                                          "method": "eth_sendRawTransaction", "params": [raw]})
    else:
        answer = carol.post("/api/tx", json={"raw": raw})
    assert answer.status_code in (200, 202), answer.get_json()
    closed = wait_for(lambda: (d := carol.signer.deal(deal["id"]))["status"] == "closed" and d,
                      timeout=30, what="the close")
    chain = runtime.ledger.chain_deal(deal["chain_deal_id"])
    assert closed["close_reason"] == "closed by buyer"
    assert chain["deliveredWh"] == closed["delivered_wh"] >= 3  # all of it reported …
    assert chain["paidWei"] == chain["priceWeiPerKWh"] * chain["deliveredWh"] // 1000 > 0  # … paid
