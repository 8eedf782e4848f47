"""The portal's one page in real headless Chromium (Debian's, driven by playwright): people
trade through it, every key unlocked and every signature made in the page.

Two browser contexts are two people (alice sells, carol buys); bob's outbidding comes through
the Python client. The page never reloads: views are reached by the header's links (a reload
would forget the key). Screenshots of every view go to test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.common import page_login, wait_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ETH = 10**18
# A 30 W load (5 Wh a second at 600x): delivery takes seconds, so it can be watched rising.
SLOW_LOAD = {"LOAD_W": 30, "GRID_PUSH_S": 0.5}
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


class Watch:
    """Console errors and every URL the pages asked for (all must be the portal's own)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.refused: list[int] = []  # statuses the browser logged for refused API calls
        self.urls: list[str] = []

    def page(self, browser, width=1100, height=900):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.urls.append(r.url))
        return page

    def _console(self, message) -> None:
        if message.type != "error":
            return
        refused = REFUSED.match(message.text)
        if refused:
            self.refused.append(int(refused.group(1)))
        else:
            self.errors.append(message.text)


def go(page, route):
    """Follow the header's link to a view (the same document: the key stays unlocked)."""
    page.click(f"nav a[data-route={route}]")
    page.wait_for_selector(f"#view-{route}:not([hidden])")


def text_number(page, selector):
    return float(page.locator(selector).first.inner_text())


@pytest.mark.parametrize("app", [SLOW_LOAD], indirect=True)
def test_two_people_trade_through_the_pages(server, browser, runtime, clock, login):
    ARTIFACTS.mkdir(exist_ok=True)
    watch = Watch()
    people = {a["name"]: a["address"] for a in runtime.demo_accounts}
    ledger = runtime.ledger
    alice, carol = watch.page(browser), watch.page(browser)

    # A wrong passphrase is refused by the page itself: the keystore does not open, and
    # nothing is sent to sign in.
    alice.goto(f"{server}/login")
    first = alice.locator("#account-pick option").nth(1).inner_text()
    alice.select_option("#account-pick", label=first)
    alice.fill("#passphrase", "not-it")
    alice.click("#login-button")
    alice.wait_for_selector("#login-error:has-text('wrong passphrase')")
    assert not [u for u in watch.urls if u.endswith("/api/login")]
    alice.screenshot(path=ARTIFACTS / "login.png")

    # alice logs in by keyboard alone. The account picker's arrows go through every account
    # (alice, bob, carol and back) with the focus staying on it; Enter moves on to the passphrase.
    alice.goto(f"{server}/login")
    alice.wait_for_selector("#account-pick option:nth-child(4)", state="attached")
    for _ in range(8):
        alice.keyboard.press("Tab")
        if alice.evaluate("document.activeElement.id") == "account-pick":
            break
    picked = []
    for key in ("ArrowDown", "ArrowDown", "ArrowDown", "ArrowUp", "ArrowUp"):
        alice.keyboard.press(key)
        assert alice.evaluate("document.activeElement.id") == "account-pick"
        option = alice.eval_on_selector("#account-pick", "s => s.selectedOptions[0].textContent")
        picked.append(option.split(" ")[0])
        assert alice.input_value("#account") == alice.input_value("#account-pick")
    assert picked == ["alice", "bob", "carol", "bob", "alice"]
    alice.keyboard.press("Enter")
    assert alice.evaluate("document.activeElement.id") == "passphrase"
    alice.keyboard.type("alice-demo")
    alice.keyboard.press("Enter")
    alice.wait_for_url("**/wallet")
    alice.wait_for_selector("#view-wallet:not([hidden])")
    wait_for(lambda: ledger.token_balance(people["alice"]) >= 70, what="tokens")
    alice.wait_for_function("parseFloat(document.getElementById('tokens').textContent) > 0")
    alice.screenshot(path=ARTIFACTS / "wallet.png", full_page=True)

    page_login(carol, server, "carol", "carol-demo")
    carol.fill("#deposit-amount", "0.5")
    carol.click("#deposit-button")
    carol.wait_for_function("document.getElementById('escrow-free').textContent === '0.5'")

    # Send Ether has a confirmation step, done here by keyboard: Enter reviews, Enter confirms.
    bob_before = ledger.eth_balance(people["bob"])
    carol.fill("#send-to", people["bob"])
    carol.fill("#send-amount", "0.01")
    carol.focus("#send-amount")
    carol.keyboard.press("Enter")
    carol.wait_for_selector("#send-confirm:not([hidden])")
    assert people["bob"] in carol.inner_text("#send-summary")  # shown checksummed, named
    assert "(bob)" in carol.inner_text("#send-summary")
    assert carol.evaluate("document.activeElement.id") == "send-yes"
    assert ledger.eth_balance(people["bob"]) == bob_before  # nothing sent before confirming
    carol.keyboard.press("Enter")
    wait_for(lambda: ledger.eth_balance(people["bob"]) == bob_before + ETH // 100,
             what="the confirmed send")
    go(carol, "market")

    go(alice, "market")
    alice.fill("#sell-wh", "60")  # 12 s of load: still running when Close connection is pressed
    alice.fill("#sell-price", "0.01")
    alice.fill("#sell-duration", "60")
    alice.click("#sell-button")
    card = carol.locator(".listing").first
    card.wait_for()  # carol's page got it live
    assert "60 Wh from alice" in card.inner_text()
    listing_id = int(card.get_attribute("data-id"))

    # A refused bid is explained inline, in the units the person typed.
    card.locator(".bid-price").fill("0.001")
    card.locator("button").click()
    carol.wait_for_selector(".bid-error:has-text('start bid')")  # the portal's sentence
    assert "ETH/kWh" in carol.inner_text(".bid-error")
    card.locator(".bid-price").fill("0.02")
    card.locator("button").click()
    carol.wait_for_selector(".listing .lead")
    alice.wait_for_selector(".listing .highest:has-text('0.02 ETH/kWh')")

    # bob outbids carol (through the Python client); carol's card says so at once.
    bob = login("bob").signer
    bob.deposit("0.2")
    wait_for(lambda: ledger.escrow_free(people["bob"]) > 0, what="bob's deposit")
    bob.bid(listing_id, 3 * 10**16)
    carol.wait_for_selector(".listing .outbid:has-text('outbid')")
    card.locator(".bid-price").fill("0.04")
    card.locator("button").click()
    carol.wait_for_selector(".listing .lead")
    carol.screenshot(path=ARTIFACTS / "market.png", full_page=True)

    # Nobody acts for another: carol's page cannot cancel alice's listing, and a request
    # without the page's CSRF token is refused.
    refused = carol.evaluate(
        f"gridbid.api('POST', '/api/listings/{listing_id}/cancel')"
        ".then(() => 'done', e => e.message)")
    assert refused == "only the seller can cancel a listing"
    forged = carol.evaluate(
        f"fetch('/api/listings/{listing_id}/bids', {{method: 'POST', headers: "
        "{'Content-Type': 'application/json'}, body: '{\"bid\": {}, \"signature\": \"0x\"}'})"
        ".then(r => r.status)")
    assert forged == 403
    assert ledger.escrow_free(people["carol"]) == ETH // 2  # unchanged

    # carol wins; the deal card's delivered Wh and paid Ether rise live.
    clock.advance(61)
    carol.wait_for_selector(".deal.active .close-connection")
    alice.wait_for_selector(".deal.active")  # the seller sees the deal too
    carol.wait_for_function(
        "Number(document.querySelector('.deal .delivered').textContent) > 0", timeout=20_000)
    first_wh = text_number(carol, ".deal .delivered")
    carol.wait_for_function(
        f"Number(document.querySelector('.deal .delivered').textContent) > {first_wh}",
        timeout=20_000)
    carol.wait_for_function(  # paid per 5 Wh step confirmed on chain
        "Number(document.querySelector('.deal .paid').textContent) > 0", timeout=20_000)

    # The grid page's charts run on samples at least once a second, and show the sale's price.
    grid = alice
    go(grid, "grid")
    # A point per emulated instant (the test's clock stands still unless advanced): three
    # steps of the clock, a sample after each.
    for _ in range(3):
        seen = grid.evaluate("Number(document.body.dataset.samples || 0)")
        clock.advance(1)
        grid.wait_for_function(f"Number(document.body.dataset.samples || 0) > {seen}",
                               timeout=10_000)
    points = grid.evaluate(
        "['chart-pv', 'chart-soc', 'chart-power', 'chart-prices'].map("
        "id => Chart.getChart(id).data.datasets.map(d => d.data.length))")
    assert len(points[0]) == 1 and points[0][0] >= 3  # PV of alice
    assert len(points[1]) == 1 and points[1][0] >= 3  # her battery
    soc = grid.evaluate("Chart.getChart('chart-soc').data.datasets[0].data.at(-1).y")
    assert 0 < soc <= 100
    assert len(points[2]) == 3 and min(points[2]) >= 3  # power through all three meters
    assert points[3] == [1]  # one sold auction
    assert grid.locator("#boards-now tr[data-board='load-carol'] .relays").inner_text() == "on"
    grid.screenshot(path=ARTIFACTS / "grid.png", full_page=True)

    carol.click(".close-connection")
    # The server's view first, so a failure says whether the chain or the page fell behind.
    try:
        wait_for(lambda: runtime.market.deals()[0]["status"] == "closed", timeout=30,
                 what="the deal to close on chain")
    except BaseException:  # pytest.fail: leave the market's view in the report
        print(f"deal: {runtime.market.deals()[0]}\n"
              f"transactions: {runtime.market.settlement.transactions()}")
        raise
    carol.wait_for_selector(".deal.closed")
    status = carol.locator(".deal-status").inner_text()
    assert "closed by buyer" in status or "completed" in status
    deal = runtime.market.deals()[0]
    assert deal["status"] == "closed" and int(deal["paid_wei"]) > 0
    assert not runtime.bridge.read("load-carol").relays[0]

    # Final balances on carol's wallet view agree with the chain: the refund is back.
    go(carol, "wallet")
    free = ledger.escrow_free(people["carol"])
    assert free == ETH // 2 - int(deal["paid_wei"])
    carol.wait_for_function(
        f"document.getElementById('escrow-free').textContent === '{_ether(free)}'")
    assert carol.inner_text("#escrow-locked") == "0"

    # The operator's admin page: health with every board and its relay state.
    admin = watch.page(browser)
    page_login(admin, server, "admin", runtime.admin_accounts[0]["passphrase"])  # made on first run
    admin.wait_for_url("**/admin")
    admin.wait_for_selector("#boards tr[data-board='load-carol']")
    admin.wait_for_selector("#health-state:has-text('node answering')")
    assert admin.inner_text("#boards tr[data-board='load-carol'] .relays") == "off"
    admin.wait_for_selector("#accounts tr[data-name='alice'] .enrolled:has-text('producer')")
    admin.screenshot(path=ARTIFACTS / "admin.png", full_page=True)

    # At phone width nothing needs sideways scrolling.
    phone = watch.page(browser, width=390, height=844)
    page_login(phone, server, "carol", "carol-demo")
    for route in ("wallet", "market", "grid", "chain"):
        go(phone, route)
        phone.wait_for_load_state("networkidle")
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the {route} view is {overflow}px wider than a phone"
    phone.screenshot(path=ARTIFACTS / "market-phone.png", full_page=True)

    # Works offline: every asset came from the portal itself.
    assert {u.split("/")[2] for u in watch.urls if u.startswith("http")} == {server.split("/")[2]}
    assert watch.errors == []
    # Only the refusals this test provoked: a low bid, a forged request, a cross-account
    # cancel (a wrong passphrase never reached the portal).
    assert sorted(watch.refused) == [400, 403, 403]


def _ether(wei: int) -> str:
    """As the pages' formatEth(wei) shows it: marketplace.units' rule (6 significant digits)."""
    from marketplace.units import eth_number

    return eth_number(wei)
