"""What the client refuses to sign, against a STAND-IN portal built here (not the real one).

The stand-in is a few Flask routes that answer like section 4 of the plan and can be told to
misbehave as a hostile or broken portal would. The real portal is tested in test_client.py;
these tests keep to what only a lying server can show: the client signs nothing it did not ask
for, and the stand-in (the attacker) receives no signature.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from flask import Flask, jsonify, request

from contracts.bindings import BID_TYPES, OFFER_TYPES, offer_hash, sign_offer
from gridbid_client.client import Client, ClientError, SigningRefused
from gridbid_client.siwe import SiweMessage, new_nonce, verify
from gridbid_client.transport import FlaskTransport

ME = Account.from_key("0x" + "a1" * 32)
OTHER = Account.from_key("0x" + "b2" * 32)
ESCROW = "0x" + "e5" * 20
TOKEN = "0x" + "70" * 20
CHAIN_ID = 31337
MY_METER = to_checksum_address("0x" + "3e" * 20)
SELLER_METER = to_checksum_address("0x" + "5e" * 20)
DOMAIN = {"name": "gridbid EnergyEscrow", "version": "1", "chainId": CHAIN_ID,
          "verifyingContract": to_checksum_address(ESCROW)}


class StandIn:
    """The stand-in portal's state; the `lie_*` attributes make it answer like an attacker."""

    def __init__(self) -> None:
        self.nonce = new_nonce()
        self.received: list[tuple[str, dict]] = []  # every POST body, in order
        self.lie_domain: str | None = None
        self.lie_address: str | None = None
        self.lie_uri: str | None = None
        self.lie_tx: dict | None = None
        self.lie_bid: dict | None = None
        self.lie_offer: dict | None = None  # the terms of the offer a seller is asked to sign
        self.lie_listing: dict | None = None  # the published offer of a listing
        self.lie_view: dict | None = None  # other fields of a listing's view
        self.old_portal = False  # its views carry no bid expiry: the client asks for terms
        self.csrf = "csrf-before-login"

    def login_message(self, address: str) -> str:
        now = datetime.now(UTC)
        return SiweMessage(
            domain=self.lie_domain or "localhost",
            address=self.lie_address or address,
            statement="Sign in to gridbid.",
            uri=self.lie_uri or "http://localhost/",
            chain_id=CHAIN_ID,
            nonce=self.nonce,
            issued_at=now,
            expiration_time=now + timedelta(minutes=5),
        ).text()

    def prepared(self, body: dict) -> dict:
        selector = function_signature_to_4byte_selector("deposit(uint8)")
        tx = {
            "to": ESCROW,
            "data": "0x" + (selector + bytes(32)).hex(),
            "value": str(int(float(body.get("amount_eth", 0)) * 10**18)),
            "gas": "100000",
            "nonce": "0",
            "chainId": str(CHAIN_ID),
            "maxFeePerGas": "2000000000",
            "maxPriorityFeePerGas": "1000000000",
            "type": 2,
        }
        return {"tx": {**tx, **(self.lie_tx or {})}, "label": body["action"], "needed": True}

    def offer(self, listing_id: int) -> dict:
        """The offer OTHER (the seller) signed for a listing, as the listing publishes it."""
        return {"seller": OTHER.address, "sellerMeter": SELLER_METER, "energyWh": 30,
                "floorPriceWeiPerKWh": 1000, "deadline": 1767200000, "nonce": 100 + listing_id}

    def listing(self, listing_id: int) -> dict:
        offer = self.offer(listing_id)
        signature = sign_offer(OTHER, CHAIN_ID, ESCROW, offer)
        published = {**offer, **(self.lie_listing or {})}
        view = {"id": listing_id, "seller": OTHER.address, "energy_wh": 30,
                "offer": {k: str(v) if isinstance(v, int) else v for k, v in published.items()},
                "offer_signature": "0x" + signature.hex(),
                "offer_hash": "0x" + offer_hash(CHAIN_ID, ESCROW, offer).hex(),
                "bid_expiry_min": 1767200000, "bid_expiry_max": 1767804800,
                **(self.lie_view or {})}
        if self.old_portal:
            for name in ("offer_hash", "bid_expiry_min", "bid_expiry_max"):
                view.pop(name)
        return view

    def terms(self, listing_id: int, price_wei: int) -> dict:
        message = {
            "offer": "0x" + offer_hash(CHAIN_ID, ESCROW, self.offer(listing_id)).hex(),
            "buyer": ME.address,
            "buyerMeter": MY_METER,
            "priceWeiPerKWh": str(price_wei),
            "maxWh": 30,
            "nonce": "8263",
            "expiry": 1767200000,
        }
        return {
            "domain": DOMAIN,
            "types": {"Bid": list(BID_TYPES["Bid"])},  # the escrow's own Bid type
            "primaryType": "Bid",
            "message": {**message, **(self.lie_bid or {})},
        }

    def offer_terms(self, body: dict) -> dict:
        message = {"seller": ME.address, "sellerMeter": MY_METER,
                   "energyWh": str(body["energy_wh"]),
                   "floorPriceWeiPerKWh": str(body["start_price_wei"]),
                   "deadline": "1767200000", "nonce": "77"}
        return {"domain": DOMAIN, "types": {"Offer": list(OFFER_TYPES["Offer"])},
                "primaryType": "Offer", "message": {**message, **(self.lie_offer or {})}}


def stand_in_app(state: StandIn) -> Flask:
    """The stand-in's routes: just enough of section 4 to drive the client."""
    app = Flask("stand_in")

    @app.before_request
    def record():
        if request.method == "POST":
            state.received.append((request.path, request.get_json(silent=True) or {}))
            if request.path not in ("/api/login/message", "/api/login"):
                if request.headers.get("X-CSRF-Token") != state.csrf:
                    return jsonify(error="the CSRF token is missing", kind="CsrfRefused"), 403
        return None

    app.get("/api/csrf", endpoint="csrf")(lambda: jsonify(csrf=state.csrf))
    app.get("/api/chain", endpoint="chain")(
        lambda: jsonify(chain_id=CHAIN_ID, contracts={"EnergyEscrow": ESCROW, "EnergyToken": TOKEN})
    )

    @app.post("/api/login/message")
    def login_message():
        return jsonify(message=state.login_message(request.json["address"]), nonce=state.nonce)

    @app.post("/api/login")
    def login():
        body = request.json
        signed = verify(
            body["message"],
            body["signature"],
            domain="localhost",
            nonce=state.nonce,
            now=datetime.now(UTC),
        )
        state.csrf = "csrf-after-login"
        return jsonify(
            address=signed.address, name="me", role="consumer", admin=False, csrf=state.csrf
        )

    @app.post("/api/tx/prepare")
    def prepare():
        if request.json["action"] == "approve":  # the allowance covers the lot already
            return jsonify(needed=False, label="Approve tokens for sale")
        return jsonify(state.prepared(request.json))

    app.get("/api/me", endpoint="me")(
        lambda: jsonify(address=ME.address, role="consumer", meter=MY_METER))
    app.get("/api/listings/<int:listing_id>", endpoint="listing")(
        lambda listing_id: jsonify(state.listing(listing_id)))
    app.post("/api/listings/terms", endpoint="offer_terms")(
        lambda: jsonify(state.offer_terms(request.json)))

    @app.post("/api/listings")
    def create_listing():
        typed = state.offer_terms(request.json)
        signer = Account.recover_message(
            encode_typed_data(full_message=typed), signature=request.json["signature"]
        )
        return jsonify(id=1, seller=signer), 201

    @app.post("/api/tx")
    def send_raw():
        raw = bytes.fromhex(request.json["raw"][2:])
        return jsonify(
            tx_hash="0x" + "00" * 32,
            status="queued",
            sender=Account.recover_transaction(raw),
            value=_value_of(raw),
        ), 202

    @app.post("/api/listings/<int:listing_id>/bids/terms")
    def terms(listing_id):
        return jsonify(state.terms(listing_id, int(request.json["price_wei"])))

    @app.post("/api/listings/<int:listing_id>/bids")
    def bid(listing_id):
        posted = request.json["bid"]
        message = {f["name"]: posted[f["name"]] if f["type"] in ("address", "bytes32")
                   else int(posted[f["name"]]) for f in BID_TYPES["Bid"]}
        typed = {"types": {"Bid": list(BID_TYPES["Bid"])}, "primaryType": "Bid",
                 "domain": DOMAIN, "message": message}
        signer = Account.recover_message(
            encode_typed_data(full_message=typed), signature=request.json["signature"]
        )
        return jsonify(id=listing_id, bidder=signer, bid=posted), 201

    @app.get("/api/wallet")
    def wallet():
        return jsonify(error="log in first", kind="NotLoggedIn"), 401

    return app


def _value_of(raw: bytes) -> int:
    """The value field of a signed type-2 transaction."""
    assert raw[0] == 2
    return int.from_bytes(rlp.decode(raw[1:])[6], "big")


@pytest.fixture
def stand_in():
    return StandIn()


@pytest.fixture
def client(stand_in):
    return Client(FlaskTransport(stand_in_app(stand_in).test_client()), ME)


def posted(stand_in: StandIn, path: str) -> list[dict]:
    return [body for where, body in stand_in.received if where == path]


def test_login_signs_a_message_naming_this_portal_and_takes_the_new_csrf(client, stand_in):
    me = client.login()
    assert me["address"] == ME.address
    assert client.csrf == "csrf-after-login"
    assert len(posted(stand_in, "/api/login")) == 1


@pytest.mark.parametrize(
    "lie",
    [
        {"lie_domain": "evil.example"},
        {"lie_domain": "localhost:8080"},
        {"lie_uri": "https://evil.example/"},
        {"lie_address": OTHER.address},
    ],
    ids=["another domain", "another port", "another uri", "another account"],
)
def test_login_message_for_another_domain_or_account_is_not_signed(client, stand_in, lie):
    for name, value in lie.items():
        setattr(stand_in, name, value)
    with pytest.raises(SigningRefused):
        client.login()
    assert posted(stand_in, "/api/login") == []  # the attacker got no signature


def test_transact_signs_the_prepared_deposit_and_posts_the_raw(client, stand_in):
    record = client.deposit("0.25")
    assert record["sender"] == ME.address
    assert record["value"] == 25 * 10**16


@pytest.mark.parametrize(
    "lie",
    [
        {"value": str(10**19)},  # more Ether than asked for
        {"to": "0x" + "66" * 20},  # another contract
        {
            "data": "0x"
            + (function_signature_to_4byte_selector("approve(address,uint256)") + bytes(64)).hex()
        },  # a different call
        {"chainId": "1"},  # a replay on another chain
        {"type": 0},
    ],
    ids=["value", "to", "call", "chain", "legacy type"],
)
def test_a_prepared_transaction_that_does_something_else_is_not_signed(client, stand_in, lie):
    stand_in.lie_tx = lie
    with pytest.raises(SigningRefused):
        client.deposit("0.25")
    assert posted(stand_in, "/api/tx") == []


def test_bid_is_built_from_the_listing_view_and_posted_once(client, stand_in):
    """One request a bid: the client builds it from the view it holds (no GET, no terms)."""
    client.login()
    view = stand_in.listing(4)
    before = len(stand_in.received)
    answer = client.bid(view, 1_200_000_000_000_000)
    assert [where for where, _ in stand_in.received[before:]] == ["/api/listings/4/bids"]
    assert answer["bidder"] == ME.address
    bid = answer["bid"]
    assert bid["offer"] == view["offer_hash"] and bid["buyerMeter"] == MY_METER
    assert (bid["maxWh"], bid["expiry"]) == ("30", "1767200000")


def test_bid_signs_the_typed_terms_of_a_portal_without_expiry_bounds(client, stand_in):
    stand_in.old_portal = True
    answer = client.bid(4, 1_200_000_000_000_000)
    assert answer["bidder"] == ME.address
    assert len(posted(stand_in, "/api/listings/4/bids/terms")) == 1


@pytest.mark.parametrize(
    "lie",
    [{"offer_hash": "0x" + offer_hash(CHAIN_ID, ESCROW, StandIn().offer(5)).hex()},
     {"energy_wh": 31}, {"offer_signature": "0x" + "11" * 65}],
    ids=["another offer's hash", "another lot", "a forged offer"],
)
def test_a_view_that_does_not_match_its_signed_offer_gets_no_bid(client, stand_in, lie):
    """The bid is built from the seller's signed offer, recomputed here: a view that names
    another hash or lot than the offer it publishes is not bid on."""
    stand_in.lie_view = lie
    with pytest.raises(SigningRefused):
        client.bid(4, 1_200_000_000_000_000)
    assert posted(stand_in, "/api/listings/4/bids") == []


@pytest.mark.parametrize(
    "lie",
    [{"buyer": OTHER.address}, {"priceWeiPerKWh": "9" * 20}, {"extra": 1},
     {"buyerMeter": SELLER_METER},
     {"offer": "0x" + offer_hash(CHAIN_ID, ESCROW, StandIn().offer(5)).hex()}],
    ids=["buyer", "price", "extra field", "meter", "another listing's offer"],
)
def test_bid_terms_that_differ_from_the_request_are_not_signed(client, stand_in, lie):
    stand_in.old_portal = True  # only a portal's terms can lie about the bid itself
    stand_in.lie_bid = lie
    with pytest.raises(SigningRefused):
        client.bid(4, 1_200_000_000_000_000)
    assert posted(stand_in, "/api/listings/4/bids") == []


@pytest.mark.parametrize("lie", [{"energyWh": 31}, {"floorPriceWeiPerKWh": 1}],
                         ids=["energy", "floor"])
def test_a_bid_on_a_listing_whose_published_offer_is_not_the_signed_one_is_refused(
        client, stand_in, lie):
    """F3: a bid names the offer by its hash, recomputed here from the listing's published
    terms and checked against the seller's signature: a portal that shows one offer and has
    the buyer sign a bid for another gets no signature."""
    stand_in.lie_listing = lie
    with pytest.raises(SigningRefused):
        client.bid(4, 1_200_000_000_000_000)
    assert posted(stand_in, "/api/listings/4/bids") == []


def test_create_listing_signs_the_offer_of_the_terms_asked(client, stand_in):
    """F3: the seller's consent is its own signature of the offer it asked for."""
    answer = client.create_listing(30, 1000, 60)
    assert answer["seller"] == ME.address
    (body,) = posted(stand_in, "/api/listings")
    assert body["offer"]["energyWh"] == "30" and body["offer"]["sellerMeter"] == MY_METER


@pytest.mark.parametrize(
    "lie",
    [{"seller": OTHER.address}, {"sellerMeter": SELLER_METER}, {"energyWh": "300"},
     {"floorPriceWeiPerKWh": "1"}, {"extra": 1}],
    ids=["seller", "meter", "energy", "floor", "extra field"],
)
def test_offer_terms_that_differ_from_the_request_are_not_signed(client, stand_in, lie):
    """F3: an offer is signed only as asked: energy, floor, this seller and its meter."""
    stand_in.lie_offer = lie
    with pytest.raises(SigningRefused):
        client.create_listing(30, 1000, 60)
    assert posted(stand_in, "/api/listings") == []


@pytest.mark.parametrize("domain", [{"chainId": 1}, {"verifyingContract": TOKEN}],
                         ids=["chain", "contract"])
def test_an_offer_for_another_chain_or_contract_is_not_signed(client, stand_in, monkeypatch,
                                                              domain):
    real = stand_in.offer_terms
    monkeypatch.setattr(stand_in, "offer_terms",
                        lambda body: {**real(body), "domain": {**DOMAIN, **domain}})
    with pytest.raises(SigningRefused):
        client.create_listing(30, 1000, 60)
    assert posted(stand_in, "/api/listings") == []


def test_the_clients_offer_type_is_the_escrows():
    """The client's own Offer type (what it recomputes hashes from) is the escrow's."""
    from gridbid_client.checks import OFFER_TYPE

    assert [(f["name"], f["type"]) for f in OFFER_TYPES["Offer"]] == OFFER_TYPE


def test_an_error_answer_becomes_a_client_error_with_status_and_kind(client):
    with pytest.raises(ClientError) as refused:
        client.wallet()
    assert (refused.value.status, refused.value.kind) == (401, "NotLoggedIn")
    assert refused.value.message == "log in first"
