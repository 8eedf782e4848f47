"""A participant's programmatic session with a gridbid portal; keys sign here and stay here."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from gridbid_client import bids, checks, keys
from gridbid_client.errors import ClientError, SigningRefused
from gridbid_client.transport import HttpTransport, Transport

__all__ = ["Client", "ClientError", "SigningRefused"]

SETTLED = ("mined", "failed")


class Client:
    """One account's session with a portal: login by SIWE, transactions prepared → signed here."""

    def __init__(
        self, target: str | Transport, account: LocalAccount | None = None, timeout: float = 30.0
    ) -> None:
        self.transport = HttpTransport(target, timeout) if isinstance(target, str) else target
        self.account = account
        self.csrf: str | None = None
        self._chain: dict[str, Any] | None = None
        self._session: dict[str, Any] | None = None  # /api/login's (or /api/me's) answer

    # -- plumbing ----------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; its JSON, or ClientError with the portal's sentence and error kind."""
        headers = {}
        if method != "GET":
            if self.csrf is None:
                self.csrf = self.call("GET", "/api/csrf")["csrf"]
            headers["X-CSRF-Token"] = self.csrf
        status, data = self.transport.request(method, path, body, headers)
        if status >= 400:
            data = data if isinstance(data, dict) else {}
            raise ClientError(status, str(data.get("error") or f"HTTP {status}"), data.get("kind"))
        return data

    def get(self, path: str) -> Any:
        """GET path."""
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        """POST path with a JSON body and the session's CSRF token."""
        return self.call("POST", path, {} if body is None else body)

    def _me(self) -> LocalAccount:
        if self.account is None:
            raise ClientError(0, "this client has no account to sign with", "NoAccount")
        return self.account

    def _chain_info(self) -> dict[str, Any] | None:
        """/api/chain (contract addresses, chain id) for the checks; None if the portal lacks it."""
        if self._chain is None:
            try:
                self._chain = self.get("/api/chain")
            except ClientError as err:
                if err.status != 404:
                    raise
                self._chain = {}
        return self._chain or None

    # -- session -----------------------------------------------------------------------------

    def _signed_login_message(self) -> tuple[str, str]:
        """A login message from the portal, checked, and this account's EIP-191 signature."""
        account = self._me()
        answer = self.post("/api/login/message", {"address": account.address})
        text = answer["message"]
        message = checks.login_message(text, self.transport, account.address)
        if answer.get("nonce") not in (None, message.nonce):
            raise SigningRefused("the login answer's nonce is not the message's")
        signature = account.sign_message(encode_defunct(text=text)).signature
        return text, "0x" + bytes(signature).hex()

    def login(self) -> dict[str, Any]:
        """Sign in with Ethereum; the portal's view of who we are (address, name, role)."""
        text, signature = self._signed_login_message()
        me = self.post("/api/login", {"message": text, "signature": signature})
        self.csrf = me.get("csrf") or self.csrf  # the login starts a new session
        self._session = me
        return me

    def logout(self) -> dict[str, Any]:
        """End the session."""
        answer = self.post("/api/logout")
        self.csrf = answer.get("csrf") or None
        self._session = None
        return answer

    def register(
        self, name: str, passphrase: str, serve_keystore: bool = False, scrypt_n: int = 2**18
    ) -> dict[str, Any]:
        """Ask to join: our keystore (encrypted here) plus a SIWE signature; 'pending' until
        an admin approves."""
        keystore = keys.encrypt(self._me(), passphrase, scrypt_n)
        text, signature = self._signed_login_message()
        return self.post(
            "/api/register",
            {
                "name": name,
                "keystore": keystore,
                "serve_keystore": bool(serve_keystore),
                "message": text,
                "signature": signature,
            },
        )

    def me(self) -> dict[str, Any]:
        """Who the session is logged in as."""
        return self.get("/api/me")

    def accounts(self) -> list[dict[str, Any]]:
        """The portal's participants (name, address, role)."""
        return self.get("/api/accounts")["accounts"]

    def chain(self) -> dict[str, Any]:
        """The chain the portal runs on: chain id, RPC URL, contract addresses."""
        return self.get("/api/chain")

    def wallet(self) -> dict[str, Any]:
        """Balances: Ether, escrow (free, locked, pending withdrawal), energy tokens."""
        return self.get("/api/wallet")

    # -- transactions ------------------------------------------------------------------------

    def prepare(self, action: str, **params: Any) -> dict[str, Any] | None:
        """The portal's prepared transaction for an action, or None when none is needed."""
        answer = self.post("/api/tx/prepare", {"action": action, **params})
        return answer if answer.get("needed", True) else None

    def sign(self, action: str, params: dict[str, Any], tx: dict[str, Any]) -> str:
        """The checked transaction signed with our key, as 0x-hex raw bytes."""
        recipient = self._recipient(params.get("to")) if action == "send" else None
        fields = checks.transaction(action, params, tx, self._chain_info(), recipient)
        signed = self._me().sign_transaction(fields)
        return "0x" + bytes(signed.raw_transaction).hex()

    def transact(self, action: str, **params: Any) -> dict[str, Any] | None:
        """Prepare → sign locally → POST /api/tx; the queued record, or None if not needed."""
        prepared = self.prepare(action, **params)
        if prepared is None:
            return None
        return self.post("/api/tx", {"raw": self.sign(action, params, prepared["tx"])})

    def _recipient(self, to: object) -> str:
        """The address a send goes to: given, or the named participant's."""
        if isinstance(to, str) and is_address(to):
            return to_checksum_address(to)
        for row in self.accounts():
            if row["name"] == to:
                return to_checksum_address(row["address"])
        raise SigningRefused(f"no participant is named {to!r}")

    def deposit(self, eth: object, market: int | None = None) -> dict[str, Any]:
        """Put Ether into the escrow (the lots market unless market is given)."""
        return self.transact("deposit", **_amount(eth, market))

    def withdraw(self, eth: object, market: int | None = None) -> dict[str, Any]:
        """Request a withdrawal from the escrow; it can be completed after the notice."""
        return self.transact("withdraw", **_amount(eth, market))

    def complete_withdrawal(self, market: int | None = None) -> dict[str, Any]:
        """Complete a withdrawal whose notice is over."""
        params = {} if market is None else {"market": int(market)}
        return self.transact("complete_withdrawal", **params)

    def send(self, to: str, eth: object) -> dict[str, Any]:
        """Send Ether to an address or a participant's name."""
        return self.transact("send", to=to, amount_eth=str(eth))

    def tx(self, tx_hash: str) -> dict[str, Any]:
        """The portal's record of a transaction: status, block, error."""
        return self.get(f"/api/tx/{tx_hash}")

    def wait_tx(self, tx_hash: str, timeout: float = 60.0, poll_s: float = 0.2) -> dict[str, Any]:
        """Poll a transaction until it is mined; ClientError if it failed or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.tx(tx_hash)
            if record.get("status") == "mined":
                return record
            if record.get("status") == "failed":
                raise ClientError(
                    0, f"transaction {tx_hash} failed: {record.get('error')}", "TxFailed"
                )
            if time.monotonic() > deadline:
                raise ClientError(
                    0,
                    f"transaction {tx_hash} still {record.get('status')} after {timeout:g} s",
                    "Timeout",
                )
            time.sleep(poll_s)

    # -- market ------------------------------------------------------------------------------

    def listings(self) -> list[dict[str, Any]]:
        """The open listings."""
        return self.get("/api/listings")["listings"]

    def listing(self, listing_id: int) -> dict[str, Any]:
        """One listing."""
        return self.get(f"/api/listings/{int(listing_id)}")

    def deals(self) -> list[dict[str, Any]]:
        """Our deals, as buyer or seller."""
        return self.get("/api/deals")["deals"]

    def deal(self, deal_id: int) -> dict[str, Any]:
        """One deal."""
        return self.get(f"/api/deals/{int(deal_id)}")

    def create_listing(self, wh: int, price_wei: int, duration_s: int) -> dict[str, Any]:
        """List energy for auction: the portal's Offer terms, checked and signed by us; the
        token approval it needs is signed here and sent with it."""
        wh, price_wei, me = int(wh), int(price_wei), self._me()
        asked = {"energy_wh": wh, "start_price_wei": str(price_wei),
                 "duration_s": int(duration_s)}
        terms = self.post("/api/listings/terms", asked)
        typed = checks.offer_terms(terms, wh, price_wei, me.address, self.me().get("meter"),
                                   self._chain_info())
        signature = Account.sign_typed_data(me.key, full_message=typed).signature
        body: dict[str, Any] = {"offer": terms["message"],
                                "signature": "0x" + bytes(signature).hex(),
                                "energy_wh": wh, "start_price_wei": str(price_wei)}
        approval = self.prepare("approve", energy_wh=wh)
        if approval is not None:
            body["approval"] = self.sign("approve", {"energy_wh": wh}, approval["tx"])
        return self.post("/api/listings", body)

    def bid(self, listing: int | Mapping[str, Any], price_wei: int) -> dict[str, Any]:
        """Bid on a listing (its id, or its view as listings() or a push gave it): the bid
        built here from the view, signed by us and posted once; the listing as it is now.
        A portal without /api/chain or bid expiry bounds in its views is asked for terms."""
        view = self.listing(int(listing)) if not isinstance(listing, Mapping) else listing
        listing_id, price_wei, me = int(view["id"]), int(price_wei), self._me()
        chain = self._chain_info()
        if chain is None or "bid_expiry_min" not in view:
            terms = self.post(f"/api/listings/{listing_id}/bids/terms",
                              {"price_wei": str(price_wei)})
            typed = checks.bid_terms(terms, view, price_wei, me.address, chain,
                                     self._meter())
        else:
            typed = bids.build_bid(view, price_wei, me.address, self._meter(),
                                   bids.chain_domain(chain))
        signature = Account.sign_typed_data(me.key, full_message=typed).signature
        try:
            return self.post(f"/api/listings/{listing_id}/bids",
                             {"bid": bids.as_json(typed["message"]),
                              "signature": "0x" + bytes(signature).hex()})
        except ClientError:
            self._session = None  # a refusal may be a meter changed since: ask again next time
            raise

    def _meter(self) -> str | None:
        """Our meter as the session's login (or /api/me) named it; asked again when none."""
        if self._session is None or self._session.get("meter") is None:
            self._session = self.me()
        return self._session.get("meter")

    def cancel_listing(self, listing_id: int) -> dict[str, Any]:
        """Withdraw our listing while it has no bids, signing the approval that lowers the
        escrow's allowance by its lot."""
        params = {"listing_id": int(listing_id)}
        prepared = self.prepare("cancel_listing", **params)
        body = {} if prepared is None else {
            "approval": self.sign("cancel_listing", params, prepared["tx"])}
        return self.post(f"/api/listings/{int(listing_id)}/cancel", body)

    def close(self, deal_id: int) -> dict[str, Any]:
        """Close connection: our signed closeDeal goes with the request; the deal's view."""
        deal_id = int(deal_id)
        prepared = self.prepare("close", deal_id=deal_id)
        body = (
            {}
            if prepared is None
            else {"raw": self.sign("close", {"deal_id": deal_id}, prepared["tx"])}
        )
        return self.post(f"/api/deals/{deal_id}/close", body)


    # -- interval market ---------------------------------------------------------------------

    def set_mode(self, mode: str) -> dict[str, Any]:
        """Trade in the "lots" or the "intervals" market from the next boundary on."""
        return self.post("/api/market-mode", {"mode": mode})

    def my_order(self) -> dict[str, Any]:
        """Our standing order (or None), our market mode and the next clearing."""
        return self.get("/api/orders/mine")

    def set_order(self, kind: str, **limits: Any) -> dict[str, Any]:
        """A standing "sell" or "buy" order: the portal's EIP-712 terms for these limits,
        checked to be our own for our meter, signed here; the order as accepted."""
        me = self._me()
        terms = self.post("/api/orders/terms", {"kind": kind, **limits})
        typed = checks.order_terms(terms, kind, me.address, self.me().get("meter"))
        signature = Account.sign_typed_data(me.key, full_message=typed).signature
        return self.post("/api/orders", {"kind": kind, "order": terms["message"],
                                         "signature": "0x" + bytes(signature).hex()})

    def cancel_order(self) -> dict[str, Any]:
        """Cancel our standing order: it takes part in no clearing from now on."""
        return self.call("DELETE", "/api/orders")


def _amount(eth: object, market: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"amount_eth": str(eth)}
    if market is not None:
        params["market"] = int(market)
    return params
