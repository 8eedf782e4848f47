"""A bid built from the listing's view (no terms request) against the real portal over HTTP:
one POST a bid, the same bid the optional /bids/terms gives but its nonce, refusals in words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account

from contracts.bindings import BID_TYPES, ESCROW_DOMAIN
from gridbid_client import bids
from gridbid_client.client import Client, ClientError
from gridbid_client.keys import unlock
from tests.common import wait_for

ETH = 10**18
PRICE = 10**16  # 0.01 ETH per kWh
SIGNER_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "signer.js"


class Counting:
    """A transport that counts the requests it carries (the client's own, HTTP)."""

    def __init__(self, inner):
        self.inner = inner
        self.sent: list[tuple[str, str]] = []

    def request(self, method, path, body=None, headers=None):
        self.sent.append((method, path))
        return self.inner.request(method, path, body, headers)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """One portal (embedded chain, demo accounts) served over HTTP for this module's tests:
    each test bids on a listing of its own. (runtime, url)."""
    import threading

    from werkzeug.serving import make_server

    from web import create_app, start_runtime
    from web.state import portal as state

    app = create_app({
        "TESTING": True, "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
        "SECRET_KEY": "test", "DEMO_ACCOUNTS": True, "SCRYPT_N": 2**10,
        "DATA_DIR": str(tmp_path_factory.mktemp("var")), "EMULATOR_SPEED": 600.0,
        "TICK_S": 0.05, "EVENT_POLL_S": 0.1, "WALLET_PUSH_S": 0.2,
        "LOGIN_BURST": 1000,  # alice and bob sign in again for every test
    })
    start_runtime(app)
    runtime = state(app).runtime
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield runtime, f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        runtime.stop()


@pytest.fixture
def people(portal):
    """alice with a fresh 10 Wh listing, bob with escrow for it: (alice, bob, listing view)."""
    runtime, url = portal
    demos = {a["name"]: a for a in runtime.demo_accounts}

    def client(name: str) -> Client:
        account = unlock(runtime.keystore.path_of(demos[name]["address"]),
                         demos[name]["passphrase"])
        signed_in = Client(url, account)
        signed_in.login()
        return signed_in

    alice, bob = client("alice"), client("bob")
    if int(bob.wallet()["escrow_free_wei"]) < ETH // 10:
        bob.wait_tx(bob.deposit("1")["tx_hash"])
        wait_for(lambda: int(bob.wallet()["escrow_free_wei"]) >= ETH // 10,
                 what="bob's deposit")
    wait_for(lambda: alice.wallet()["unlisted_wh"] >= 10, what="alice's tokens")
    return alice, bob, alice.create_listing(10, PRICE, 600)


def signed(client: Client, typed: dict) -> dict:
    """The POST body of a typed bid signed by the client's key."""
    signature = Account.sign_typed_data(client.account.key, full_message=typed).signature
    return {"bid": bids.as_json(typed["message"]), "signature": "0x" + bytes(signature).hex()}


def test_a_bid_built_from_the_view_is_the_terms_bid_but_its_nonce(people):
    _, bob, listing = people
    view = next(v for v in bob.listings() if v["id"] == listing["id"])
    built = bids.build_bid(view, PRICE, bob.account.address, bob.me()["meter"],
                           bids.chain_domain(bob.chain()))
    terms = bob.post(f"/api/listings/{view['id']}/bids/terms", {"price_wei": str(PRICE)})
    ours, theirs = bids.as_json(built["message"]), dict(terms["message"])
    assert ours.pop("nonce") != theirs.pop("nonce")
    assert ours == theirs
    assert built["domain"] == terms["domain"]
    assert built["types"]["Bid"] == terms["types"]["Bid"]
    assert view["bid_expiry_max"] == view["bid_expiry_min"] + 7 * 86400


def test_a_bid_is_one_post_and_is_accepted(people):
    _, bob, listing = people
    first = bob.bid(listing, PRICE)  # the session's first bid reads /api/chain once, as a page
    assert first["highest_bidder"] == bob.account.address  # holds the chain's facts from login
    assert first["highest_bid_wei"] == str(PRICE) and first["bid_count"] == 1
    counted = bob.transport = Counting(bob.transport)
    # The answer is the view the next bid is built from: one request a bid.
    after = bob.bid(first, int(first["min_next_bid_wei"]))
    assert counted.sent == [("POST", f"/api/listings/{listing['id']}/bids")]
    assert after["bid_count"] == 2 and after["highest_bidder"] == bob.account.address


def test_a_bid_too_low_is_refused_in_a_sentence(people):
    _, bob, listing = people
    with pytest.raises(ClientError) as low:
        bob.bid(listing, PRICE - 1)
    assert low.value.status == 400 and low.value.kind == "BidTooLow"
    assert "start bid" in low.value.message and "at least" in low.value.message
    # A refused bid is no bid: the same bid at the start price is taken next.
    assert bob.bid(listing, PRICE)["bid_count"] == 1


@pytest.mark.parametrize("shift", [-1, 7 * 86400 + 1], ids=["too early", "too late"])
def test_a_bid_whose_expiry_is_out_of_bounds_is_refused_in_a_sentence(people, shift):
    _, bob, listing = people
    typed = bids.build_bid(listing, PRICE, bob.account.address, bob.me()["meter"],
                           bids.chain_domain(bob.chain()))
    typed["message"]["expiry"] = listing["bid_expiry_min"] + shift
    with pytest.raises(ClientError) as refused:
        bob.post(f"/api/listings/{listing['id']}/bids", signed(bob, typed))
    assert refused.value.status == 400 and refused.value.kind == "InvalidInput"
    message = refused.value.message
    assert "expiry" in message and str(listing["bid_expiry_min"]) in message
    assert bob.listing(listing["id"])["bid_count"] == 0


def test_a_producer_building_its_own_bid_is_told_who_may_bid(people):
    alice, _, listing = people
    with pytest.raises(ClientError) as refused:
        alice.bid(listing, PRICE)
    assert refused.value.status == 403 and "only consumers" in refused.value.message


def test_the_client_and_the_page_sign_with_the_escrows_bid_type_and_domain():
    """Both keep their own copies (never the portal's word): they must be the contract's."""
    contract = [(f["name"], f["type"]) for f in BID_TYPES["Bid"]]
    assert bids.BID_TYPE == contract and bids.ESCROW_DOMAIN == tuple(ESCROW_DOMAIN)
    page = SIGNER_JS.read_text()
    block = page[page.index("const BID = ["):]
    block = block[:block.index("];")]
    assert re.findall(r'name: "(\w+)", type: "(\w+)"', block) == contract
    assert f'{{ name: "{ESCROW_DOMAIN[0]}", version: "{ESCROW_DOMAIN[1]}" }}' in page
