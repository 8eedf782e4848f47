"""The Automatic trading card in real headless Chromium: a consumer switches to the interval
market, signs a standing buy order in the page, sees the countdown, its fills appear as
intervals pass (the market clock is a ManualClock moved boundary by boundary), changes and
cancels the order; the Grid view charts the clearing prices, the wallet shows the interval.

alice, a producer, signs her sell order in her own page's card first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.common import Clearings, demo_key, page_login, wait_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

FLOOR = 10**16  # 0.01 ETH per kWh


def _alice_sells(browser, server, runtime, errors: list[str]) -> None:
    """alice, a producer, signs a sell order in her own page's card (reserve as % of charge)."""
    alice = browser.new_context().new_page()
    alice.on("pageerror", lambda e: errors.append(str(e)))
    page_login(alice, server, "alice", "alice-demo", "/market")
    alice.wait_for_selector("#auto-card.sell:not([hidden])")
    assert alice.is_hidden("#order-expected")  # a producer's card asks for a sell order only
    alice.check("#mode-intervals")
    alice.wait_for_selector("#mode-state:has-text('Switching to the interval market')")
    alice.fill("#order-price", "0.01")
    alice.fill("#order-reserve", "10")  # % state of charge
    alice.click("#order-submit")
    alice.wait_for_selector("#order-current:has-text('no less than 0.01 ETH/kWh')")
    [seller] = [a["address"] for a in runtime.demo_accounts if a["name"] == "alice"]
    order = runtime.market.intervals.order_of(seller)["order"]
    assert order["reserveWh"] == str(round(0.1 * runtime.market.settings.battery_wh))
    alice.close()


@pytest.mark.parametrize("app", [{"LOAD_W": 60}], indirect=True)
def test_a_standing_order_signed_in_the_card_trades_every_interval(server, browser, app,
                                                                    runtime, clock):
    carol_key = demo_key(app.config["DATA_DIR"], "carol")
    clearings = Clearings(runtime)
    errors: list[str] = []
    page = browser.new_context().new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    _alice_sells(browser, server, runtime, errors)

    # Standing buy orders are covered by the community market's escrow: deposit there first.
    page_login(page, server, "carol", "carol-demo", "/wallet")
    page.select_option("#deposit-market", "1")
    page.fill("#deposit-amount", "0.5")
    page.click("#deposit-button")
    page.wait_for_function("document.getElementById('escrow-community').textContent === '0.5'")
    assert runtime.ledger.escrow_free(carol_key.address) == 0  # none went to the lot market

    page.click("nav a[data-route=market]")
    page.wait_for_selector("#view-market:not([hidden]) #auto-card.buy:not([hidden])")
    page.wait_for_function("document.getElementById('next-clearing').textContent.length > 1")
    assert page.is_hidden("#order-reserve")  # a consumer's card asks for a buy order only

    # Switch to the interval market, then sign a buy order in the card.
    page.check("#mode-intervals")
    page.wait_for_selector("#mode-state:has-text('Switching to the interval market')")
    page.fill("#order-price", "0.02")
    page.fill("#order-expected", "20")
    page.fill("#order-max", "50")
    page.click("#order-submit")
    page.wait_for_selector("#order-current:not([hidden]):has-text('0.02 ETH/kWh')")
    stored = runtime.market.intervals.order_of(carol_key.address)
    assert stored["kind"] == "buy" and stored["order"]["buyer"] == carol_key.address
    assert (stored["order"]["capWeiPerKWh"], stored["order"]["expectedWh"]) == (str(2 * FLOOR),
                                                                                 "20")
    assert page.inner_text("#order-submit") == "Sign and change order"

    # Intervals pass: the switch at the first boundary, then the order clears; the card's fills
    # table and the live region say so.
    for _ in range(4):
        clearings.pass_boundary(clock)
        if page.locator("#fills tr.fill[data-side=buy]").count():
            break
    page.wait_for_selector("#fills tr.fill[data-side=buy]")
    page.wait_for_selector("#clearing-result:has-text('cleared')")
    # Said once, by the page's polite announcer (the card's line itself is not a live region).
    said = page.locator("#announce p", has_text="cleared")
    assert said.count() >= 1 and page.get_attribute("#announce", "aria-live") == "polite"
    row = page.locator("#fills tr.fill[data-side=buy]").first
    assert row.locator("td").nth(1).inner_text() == "bought"
    assert 0 < int(row.locator(".wh").inner_text()) <= 20
    # One more boundary meters and bills the filled interval.
    clearings.pass_boundary(clock)
    page.wait_for_function(
        "[...document.querySelectorAll('#fills tr.fill .metered')]"
        ".some(c => c.textContent !== '–')")

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#auto-card").screenshot(path=ARTIFACTS / "automatic-trading.png")

    # Change the cap, then cancel: the portal holds the new order, then none.
    page.fill("#order-price", "0.03")
    page.click("#order-submit")
    page.wait_for_selector("#order-current:has-text('0.03 ETH/kWh')")
    assert runtime.market.intervals.order_of(carol_key.address)["order"]["capWeiPerKWh"] == \
        str(3 * FLOOR)
    changed = runtime.market.intervals.order_of(carol_key.address)
    page.click("#order-cancel")
    page.wait_for_selector("#order-current", state="hidden")
    assert runtime.market.intervals.order_of(carol_key.address) is None
    # carol's own cancelBuyOrder (signed in the page) ends the order on chain too.
    digest = bytes.fromhex(changed["hash"][2:])
    wait_for(lambda: runtime.ledger.intervals.cancelled(digest, carol_key.address),
             what="the order's cancel on chain")

    # The Grid view charts the clearing prices from the server's history.
    page.click("nav a[data-route=grid]")
    page.wait_for_function("document.body.dataset.intervalsLoaded === '1'")
    points = page.evaluate("Chart.getChart('chart-intervals').data.datasets[0].data.length")
    assert points >= 1
    assert "emulator" in page.inner_text("#intervals-axis")  # 600x: an emulated-time axis
    tick = page.evaluate("Chart.getChart('chart-intervals').scales.x.ticks[0].label")
    assert re.fullmatch(r"\d\d:\d\d", tick)  # the emulator's time of day
    page.locator("#chart-intervals").screenshot(path=ARTIFACTS / "interval-prices.png")
    # The wallet says what this interval earned or cost.
    page.click("nav a[data-route=wallet]")
    page.wait_for_selector("#interval-what:has-text('this interval')")
    page.locator("#interval-card").screenshot(path=ARTIFACTS / "wallet-interval.png")
    assert errors == []
