"""What the pages say, in real headless Chromium (Debian's, driven by playwright): one unit
system (Wh with kWh, ETH with sensible decimals, a lot's total cost beside its price), controls
named for what they act on, a consumer's wallet without producer cards, login by name, and the
admin's Disenroll asking before it acts (issue 17)."""

from __future__ import annotations

import re

import pytest

from tests.common import page_login, wait_for

pytestmark = pytest.mark.browser


def go(page, route):
    page.click(f"nav a[data-route={route}]")
    page.wait_for_selector(f"#view-{route}:not([hidden])")


def test_a_mistyped_name_at_login_is_answered_about_names(server, browser):
    """Before: "no account named alise here" (on d4dad1d an "Ethereum address" error)."""
    page = browser.new_page()
    page.goto(f"{server}/login")
    page.wait_for_function("document.querySelectorAll('#account-pick option').length > 1")
    page.fill("#account", "alise")
    page.fill("#passphrase", "whatever")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('no participant is named')")
    said = page.inner_text("#login-error")
    assert "pick one of alice, bob, carol" in said and "Ethereum address" not in said, said


def test_consumer_pages_speak_one_unit_system_and_name_their_controls(server, browser, runtime,
                                                                      login):
    alice = login("alice")
    alice_addr = {a["name"]: a["address"] for a in runtime.demo_accounts}["alice"]
    wait_for(lambda: runtime.market.unlisted_wh(alice_addr) >= 30, what="alice's tokens")
    listing = alice.signer.create_listing(30, 10**16, 600)
    login("bob").signer.deposit("1")
    page = browser.new_page()
    page_login(page, server, "bob", "bob-demo")

    # The wallet: no producer cards for a consumer; each amount field named for its action.
    go(page, "wallet")
    page.wait_for_function("document.getElementById('eth').textContent !== '–'")
    assert page.locator("#tokens-card").is_hidden() and page.locator("#generation-card").is_hidden()
    assert page.get_by_label("Amount to deposit or withdraw (ETH)").count() == 1
    assert page.get_by_label("Amount to send (ETH)").count() == 1
    assert page.get_by_label("Amount (ETH)", exact=True).count() == 0
    # Send Ether takes a participant's name; the review names the address and the person.
    page.fill("#send-to", "carol")
    page.fill("#send-amount", "0.5")
    page.click("#send-button")
    page.wait_for_selector("#send-confirm:not([hidden])")
    assert "(carol)" in page.inner_text("#send-summary")
    page.click("#send-no")

    # The market: the lot's total cost beside its price, the bid's least visible, the button
    # named for the lot it bids on.
    go(page, "market")
    card = page.locator(f"#listing-{listing['id']}")
    card.wait_for()
    assert "0.01 ETH/kWh (0.0003 ETH for 30 Wh)" in card.inner_text()
    button = page.get_by_role("button", name="Bid on alice's 30 Wh")
    assert button.count() == 1
    assert page.get_by_role("button", name="Buy", exact=True).count() == 0
    hint = card.locator(".bid-hint")
    assert hint.inner_text() == "Your bid: at least 0.01 ETH/kWh (0.0003 ETH for 30 Wh)."
    field = card.locator(".bid-price")
    assert field.get_attribute("aria-describedby") == hint.get_attribute("id")
    wait_for(lambda: runtime.ledger.escrow_free(page_address(page)) > 0, what="bob's deposit")
    field.fill("0.02")
    button.click()
    card.locator(".standing.lead").wait_for()
    # Placed: the field is empty again and the hint says what the next bid must be.
    assert field.input_value() == ""
    page.wait_for_function(
        f"!document.querySelector('#listing-{listing['id']} .bid-hint').textContent"
        ".includes('at least 0.01 ')")
    assert re.fullmatch(r"Your bid: at least 0\.02\d* ETH/kWh \(0\.0006\d* ETH for 30 Wh\)\.",
                        hint.inner_text()), hint.inner_text()


def page_address(page) -> str:
    return page.inner_text("#wallet-address")


def test_admin_names_each_disenroll_and_asks_before_acting(server, browser, runtime):
    page = browser.new_page()
    page_login(page, server, "admin", runtime.admin_accounts[0]["passphrase"])
    page.wait_for_url("**/admin")
    page.wait_for_selector("#accounts .disenroll")
    names = page.eval_on_selector_all("#accounts .disenroll", "bs => bs.map(b => b.textContent)")
    assert sorted(names) == ["Disenroll alice's meter (board pv-alice)",
                             "Disenroll bob's meter (board load-bob)",
                             "Disenroll carol's meter (board load-carol)"], names
    bob_meter = next(p["meter_address"] for p in runtime.store.participants() if p["name"] == "bob")
    page.get_by_role("button", name="Disenroll bob's meter (board load-bob)").click()
    yes = page.get_by_role("button", name="Yes, disenroll bob's meter (board load-bob)")
    yes.wait_for()
    assert page.evaluate("document.activeElement.textContent").startswith("Yes, disenroll bob")
    page.get_by_role("button", name="Keep it enrolled").click()  # asked, not done
    assert runtime.ledger.meter_of(bob_meter)["kind"] != 0  # still enrolled
    page.get_by_role("button", name="Disenroll bob's meter (board load-bob)").click()
    yes.click()
    page.wait_for_selector("#accounts tr[data-name='bob'] .enrolled:has-text('no')")
