"""The pages in real headless Chromium (Debian's, driven by playwright): a trade by two people."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("GRIDBID_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def open_page(browser, errors):
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def log_in(page, base, name, passphrase):
    page.goto(f"{base}/login")
    page.fill("#account", name)
    page.fill("#passphrase", passphrase)
    page.click("#login-button")
    page.wait_for_url("**/wallet")


def test_two_people_trade_through_the_pages(server, browser, runtime, clock):
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    alice, carol = open_page(browser, errors), open_page(browser, errors)

    # A wrong passphrase is refused on the page, with a message.
    alice.goto(f"{server}/login")
    first = alice.locator("#account-pick option").nth(1).inner_text()
    alice.select_option("#account-pick", label=first)
    alice.fill("#passphrase", "not-it")
    alice.click("#login-button")
    alice.wait_for_selector("#login-error:has-text('wrong passphrase')")
    alice.screenshot(path=ARTIFACTS / "login.png")
    errors.clear()  # the refused login's 401 is logged by the browser itself

    log_in(alice, server, "alice", "alice-demo")
    ledger = runtime.ledger
    alice_address = {a["name"]: a["address"] for a in runtime.demo_accounts}["alice"]
    wait_for(lambda: ledger.token_balance(alice_address) >= 60, what="tokens")
    alice.wait_for_function("Number(document.getElementById('tokens').textContent) > 0")
    alice.screenshot(path=ARTIFACTS / "wallet.png", full_page=True)

    log_in(carol, server, "carol", "carol-demo")
    carol.fill("#deposit-amount", "0.5")
    carol.click("#deposit-button")
    carol.wait_for_function("document.getElementById('escrow-free').textContent === '0.5'")
    carol.goto(f"{server}/market")

    alice.goto(f"{server}/market")
    alice.fill("#sell-wh", "30")
    alice.fill("#sell-price", "0.01")
    alice.fill("#sell-duration", "60")
    alice.click("#sell-button")
    card = carol.locator(".listing").first
    card.wait_for()  # carol's page got it live
    assert "30 Wh from alice" in card.inner_text()

    card.locator(".bid-price").fill("0.001")
    card.locator("button").click()
    carol.wait_for_selector(".bid-error:has-text('start bid')")
    errors.remove(  # the refused bid's 400 is logged by the browser itself
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    )
    card.locator(".bid-price").fill("0.02")
    card.locator("button").click()
    carol.wait_for_selector(".listing .lead")
    alice.wait_for_selector(".listing .highest:has-text('0.02 ETH/kWh')")
    carol.screenshot(path=ARTIFACTS / "market.png", full_page=True)

    clock.advance(61)
    carol.wait_for_selector(".deal.active .close-connection")
    carol.wait_for_function(
        "Number(document.querySelector('.deal .delivered').textContent) > 0", timeout=20_000
    )
    alice.wait_for_selector(".deal.active")  # the seller sees the deal too
    carol.click(".close-connection")
    carol.wait_for_selector(".deal.closed")
    status = carol.locator(".deal-status").inner_text()
    assert "closed by buyer" in status or "completed" in status
    deal = runtime.market.deals()[0]
    assert deal["status"] == "closed" and int(deal["paid_wei"]) > 0
    assert not runtime.bridge.read("load-carol").relays[0]
    assert errors == []
