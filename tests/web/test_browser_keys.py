"""Keys stay in the page: what a browser sends while a person trades, an injected wallet,
and a key that lives exactly as long as the page.

Every request of the pages is captured (URL, headers, body, socket frames); none may carry
the passphrase or the private key. The bid the portal stored recovers to the bidder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from contracts.bindings import bid_typed_data, offer_typed_data, recover_typed
from marketplace.signed import stored_offer
from tests.common import demo_key, page_login, wait_for

pytestmark = pytest.mark.browser

ETH = 10**18
SLOW_LOAD = {"LOAD_W": 30, "GRID_PUSH_S": 0.5}


class Capture:
    """Everything a page sends: each request's URL, headers and body, each socket frame."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.errors: list[str] = []

    def page(self, browser):
        page = browser.new_context().new_page()
        page.on("request", self._request)
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def _request(self, request) -> None:
        body = request.post_data_buffer or b""
        self.sent.append(f"{request.method} {request.url}\n{json.dumps(request.headers)}\n"
                         f"{body.decode('latin-1')}")

    def _frame(self, payload) -> None:
        self.sent.append(payload if isinstance(payload, str) else payload.decode("latin-1"))

    def carrying(self, *secrets: str) -> list[str]:
        """The captured requests in which any secret appears (case-insensitive)."""
        lowered = [s.lower() for s in secrets]
        return [text[:200] for text in self.sent if any(s in text.lower() for s in lowered)]


def _secrets(key, passphrase: str) -> list[str]:
    hexkey = key.key.hex().removeprefix("0x")
    return [passphrase, hexkey, "0x" + hexkey]


@pytest.mark.parametrize("app", [SLOW_LOAD], indirect=True)
def test_no_request_carries_a_passphrase_or_key_and_bids_recover(server, browser, app, runtime,
                                                                  clock):
    data_dir = app.config["DATA_DIR"]
    alice_key, carol_key = demo_key(data_dir, "alice"), demo_key(data_dir, "carol")
    ledger = runtime.ledger
    bob = {a["name"]: a["address"] for a in runtime.demo_accounts}["bob"]
    capture = Capture()
    alice, carol = capture.page(browser), capture.page(browser)

    page_login(alice, server, "alice", "alice-demo", "/market")
    page_login(carol, server, "carol", "carol-demo")
    # carol moves through all four views (and the chain's); nothing asks for the passphrase.
    for route in ("market", "grid", "chain", "wallet"):
        carol.click(f"nav a[data-route={route}]")
        carol.wait_for_selector(f"#view-{route}:not([hidden])")

    carol.fill("#deposit-amount", "0.5")
    carol.click("#deposit-button")
    wait_for(lambda: ledger.escrow_free(carol_key.address) == ETH // 2, what="carol's deposit")
    before = ledger.eth_balance(bob)
    carol.fill("#send-to", "bob")
    carol.fill("#send-amount", "0.01")
    carol.click("#send-button")
    carol.wait_for_selector("#send-confirm:not([hidden])")
    assert "(bob)" in carol.inner_text("#send-summary")
    carol.click("#send-yes")
    wait_for(lambda: ledger.eth_balance(bob) == before + ETH // 100, what="carol's send")

    wait_for(lambda: ledger.token_balance(alice_key.address) >= 40, what="alice's tokens")
    alice.fill("#sell-wh", "40")
    alice.fill("#sell-duration", "30")
    alice.click("#sell-button")
    carol.click("nav a[data-route=market]")
    card = carol.locator(".listing").first
    card.wait_for()
    listing_id = int(card.get_attribute("data-id"))
    card.locator(".bid-price").fill("0.02")
    card.locator("button").click()
    carol.wait_for_selector(".listing .lead")

    # The stored bid is carol's own: its signature recovers to her over the EIP-712 bid.
    [stored] = runtime.store.bids(listing_id)
    listing = runtime.store.listing(listing_id)
    bid = {"offer": listing["offer_hash"], "buyer": carol_key.address,
           "buyerMeter": stored["buyer_meter"], "priceWeiPerKWh": int(stored["price"]),
           "maxWh": listing["energy_wh"], "nonce": int(stored["nonce"]),
           "expiry": int(stored["expiry"])}
    typed = bid_typed_data(*ledger.bid_domain(), bid)
    signer = Account.recover_message(encode_typed_data(full_message=typed),
                                     signature=stored["signature"])
    assert signer == carol_key.address
    # F3: the listing is alice's own signed offer (signed in her page), backed by her permit.
    offer = stored_offer(listing["offer"])
    assert recover_typed(offer_typed_data(*ledger.offer_domain(), offer),
                         bytes.fromhex(listing["offer_signature"][2:])) == alice_key.address
    assert runtime.txm.record(listing["approval_tx"]).sender == runtime.ledger.operator.address

    clock.advance(31)
    carol.wait_for_selector(".deal.active .close-connection", timeout=30_000)
    carol.wait_for_function(
        "Number(document.querySelector('.deal .delivered').textContent) > 0", timeout=20_000)
    carol.click(".close-connection")
    carol.wait_for_selector(".deal.closed", timeout=30_000)
    assert runtime.market.deals()[0]["status"] == "closed"

    leaked = capture.carrying(*_secrets(alice_key, "alice-demo"),
                              *_secrets(carol_key, "carol-demo"))
    assert leaked == []
    assert len(capture.sent) > 50  # the capture saw the session (not an empty list passing)
    assert capture.errors == []


# MetaMask's method set, and nothing more: a page that needs eth_signTransaction fails here.
INJECTED = Path(__file__).with_name("injected_wallet.js")


def test_an_injected_wallet_logs_in_bids_and_deposits(server, browser, app, runtime, login):
    data_dir = app.config["DATA_DIR"]
    carol_key = demo_key(data_dir, "carol")
    ledger = runtime.ledger
    capture = Capture()
    page = capture.page(browser)
    script = INJECTED.read_text().replace("__KEY__", json.dumps("0x" + carol_key.key.hex()
                                          .removeprefix("0x")))
    page.add_init_script(script.replace("__CHAIN__", json.dumps(hex(ledger.chain_id()))))
    page.goto(f"{server}/wallet")
    refused = page.evaluate("window.ethereum.request({method: 'eth_signTransaction', params: [{}]})"
                            ".then(() => 'signed', e => e.message)")
    assert refused == "method not supported"
    page.click("#wallet-login")
    page.wait_for_selector("#view-wallet:not([hidden])")
    assert page.inner_text("#signer-kind") == "browser wallet"

    page.fill("#deposit-amount", "0.3")
    page.click("#deposit-button")
    wait_for(lambda: ledger.escrow_free(carol_key.address) == 3 * ETH // 10,
             what="the wallet's own deposit")

    alice = login("alice")
    alice_address = alice.signer.account.address
    wait_for(lambda: ledger.token_balance(alice_address) >= 30, what="alice's tokens")
    listing = alice.signer.create_listing(30, 10**16, 60)
    page.click("nav a[data-route=market]")
    card = page.locator(f"#listing-{listing['id']}")
    before = len(capture.sent)
    card.locator(".bid-price").fill("0.02")
    card.locator("button").click()
    page.wait_for_selector(f"#listing-{listing['id']} .lead")
    [stored] = runtime.store.bids(listing["id"])
    assert stored["bidder"] == carol_key.address
    # Issue 16: the page builds the bid from the listing it shows: one request, no terms.
    asked = [text.split("\n", 1)[0] for text in capture.sent[before:]
             if text.startswith(("GET ", "POST "))]
    assert [line for line in asked if "/api/listings" in line] == [
        f"POST {server}/api/listings/{listing['id']}/bids"]

    calls = set(page.evaluate("window.__walletCalls"))
    assert "eth_sendTransaction" in calls and "eth_signTypedData_v4" in calls
    assert calls - {"eth_signTransaction"} <= {
        "eth_requestAccounts", "eth_chainId", "personal_sign", "eth_signTypedData_v4",
        "eth_sendTransaction", "wallet_addEthereumChain", "wallet_switchEthereumChain"}
    asked = page.evaluate("window.__walletCalls.filter(m => m === 'eth_signTransaction')")
    assert asked == ["eth_signTransaction"]  # only the test's own probe, never the page
    assert capture.errors == []


def test_an_injected_wallet_signs_the_offer_and_permit_of_a_listing_and_its_cancel(
        server, browser, app, runtime):
    """F3/F8: a browser wallet lists as it bids, by eth_signTypedData_v4 alone (the Offer and
    the permit), and its cancel lowers the allowance by a permit too: no Ether needed."""
    alice_key, ledger = demo_key(app.config["DATA_DIR"], "alice"), runtime.ledger
    capture = Capture()
    page = capture.page(browser)
    script = INJECTED.read_text().replace("__KEY__", json.dumps("0x" + alice_key.key.hex()
                                          .removeprefix("0x")))
    page.add_init_script(script.replace("__CHAIN__", json.dumps(hex(ledger.chain_id()))))
    page.goto(f"{server}/market")
    page.click("#wallet-login")
    wait_for(lambda: ledger.token_balance(alice_key.address) >= 20, what="alice's tokens")
    page.wait_for_selector("#sell-card:not([hidden])")
    page.fill("#sell-wh", "20")
    page.fill("#sell-duration", "60")
    page.click("#sell-button")
    page.wait_for_selector(".listing .cancel-listing")
    [row] = runtime.store.listings()
    assert recover_typed(offer_typed_data(*ledger.offer_domain(), stored_offer(row["offer"])),
                         bytes.fromhex(row["offer_signature"][2:])) == alice_key.address
    wait_for(lambda: ledger.allowance(alice_key.address) >= 20, what="the permit")
    page.click(".listing .cancel-listing")
    wait_for(lambda: ledger.allowance(alice_key.address) == 0, what="the lowering permit")
    assert runtime.store.listing(row["id"])["status"] == "cancelled"
    assert set(page.evaluate("window.__walletCalls")) <= {
        "eth_requestAccounts", "eth_chainId", "personal_sign", "eth_signTypedData_v4"}
    assert capture.errors == []


def test_views_never_ask_again_but_a_reload_does(server, browser, runtime):
    capture = Capture()
    page = capture.page(browser)
    page_login(page, server, "carol", "carol-demo", "/market")
    assert page.url.endswith("/market")  # the view asked for, once logged in
    page.evaluate("window.__sameDocument = true")
    for route in ("wallet", "grid", "market", "chain", "wallet"):
        page.click(f"nav a[data-route={route}]")
        page.wait_for_selector(f"#view-{route}:not([hidden])")
        assert page.is_hidden("#view-login")
        assert page.evaluate("document.activeElement.id") == f"{route}-title"
    page.go_back()
    page.wait_for_selector("#view-chain:not([hidden])")
    page.go_back()
    page.wait_for_selector("#view-market:not([hidden])")
    assert page.evaluate("window.__sameDocument") is True  # not one document load since
    logins = [s for s in capture.sent if s.split("\n")[0].endswith("/api/login")]
    assert len(logins) == 1

    page.reload()
    page.wait_for_selector("#view-login:not([hidden])")
    assert page.is_hidden("#view-market")
    assert page.evaluate("document.body.classList.contains('logged-out')")


@pytest.mark.parametrize("app", [{"SESSION_IDLE_S": 2}], indirect=True)
def test_an_idle_page_forgets_the_key(server, browser):
    page = Capture().page(browser)
    page_login(page, server, "carol", "carol-demo")
    page.wait_for_selector("#view-login:not([hidden])", timeout=10_000)
    assert "without activity" in page.inner_text("#login-notice")
    assert page.evaluate("window.gridbid.session.me") is None
