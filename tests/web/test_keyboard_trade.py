"""The whole trade of both markets by keyboard alone, in real headless Chromium (Debian's,
driven by playwright): two pages are two people (alice sells, carol buys), bob bids through the
Python client. After every redraw the focus and anything typed are where the person left them;
every change someone else or the server caused is said once in the page's live regions
(#announce polite, #announce-urgent assertive) and shown on the cards, never by moving focus.
"""

from __future__ import annotations

import pytest

from tests.common import Clearings, wait_for

pytestmark = pytest.mark.browser

# A 30 W load (5 Wh a second at 600x): an 80 Wh deal runs ~16 s, long enough to be closed.
SLOW_LOAD = {"LOAD_W": 30, "GRID_PUSH_S": 0.5}
LOT_WH = 80
TEXTS = "nodes => nodes.map(n => n.textContent)"
PICKED = "s => s.selectedOptions[0].textContent"
FILL_CELLS = "rows => rows.map(r => [r.cells[0].textContent, r.cells[2].textContent])"  # when, Wh


def tab_to(page, selector: str, back: bool = False, limit: int = 120) -> None:
    """Press Tab (Shift+Tab) until the focus is on `selector`: it is reachable by keyboard."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} was not reached by {'Shift+' if back else ''}Tab")


def focus_on(page, selector: str) -> None:
    """The focused element is `selector` (else say what has the focus instead)."""
    where = page.evaluate("document.activeElement.outerHTML.slice(0, 160)")
    assert page.evaluate("s => document.activeElement.matches(s)", selector), where


def said(page, text: str, urgent: bool = False, once: bool = True) -> str:
    """Wait for the live region's line containing `text`; it is there exactly once (or, with
    once=False, each such line differs: nothing said twice)."""
    region = "#announce-urgent" if urgent else "#announce"
    page.wait_for_function(
        "([r, t]) => [...document.querySelectorAll(r + ' p')].some(p => p.textContent.includes(t))",
        arg=[region, text], timeout=30_000)
    lines = [line for line in page.eval_on_selector_all(f"{region} p", TEXTS) if text in line]
    assert len(lines) == 1 if once else len(set(lines)) == len(lines), lines
    return lines[0]


def go(page, route: str) -> None:
    """Follow the header's link to a view by keyboard (back up to the header, before the view)."""
    tab_to(page, f"nav a[data-route={route}]", back=True)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#view-{route}:not([hidden])")


def type_into(page, selector: str, text: str) -> None:
    """Tab to a field, replace what it holds by typing."""
    tab_to(page, selector)
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def pick_login(page, server: str, name: str, passphrase: str) -> None:
    """Log in by keyboard: the account picker's arrows to `name`, Enter, the passphrase."""
    page.goto(f"{server}/login")
    page.wait_for_selector("#account-pick option:nth-child(4)", state="attached")
    tab_to(page, "#account-pick")
    for _ in range(10):
        page.keyboard.press("ArrowDown")
        focus_on(page, "#account-pick")  # arrows never jump to the passphrase
        if page.eval_on_selector("#account-pick", PICKED).startswith(name):
            break
    assert page.input_value("#account") == page.input_value("#account-pick")
    page.keyboard.press("Enter")
    focus_on(page, "#passphrase")
    page.keyboard.type(passphrase)
    page.keyboard.press("Enter")
    page.wait_for_selector("body.logged-in", timeout=30_000)


def _lot_auction(alice, carol, bob, runtime, clock) -> None:
    """List, bid, outbid, a soft close, win: focus and the live regions after each push."""
    go(alice, "market")
    type_into(alice, "#sell-wh", str(LOT_WH))
    type_into(alice, "#sell-price", "0.01")
    type_into(alice, "#sell-duration", "60")
    tab_to(alice, "#sell-button")
    alice.keyboard.press("Enter")
    card = carol.locator(".listing").first
    card.wait_for()
    focus_on(alice, "#sell-button")  # busy while signing, never disabled: the focus stays
    said(carol, f"New listing: {LOT_WH} Wh from alice, start bid 0.01 ETH/kWh")
    listing_id = int(card.get_attribute("data-id"))

    # carol bids 0.02: after her own redraw the focus is still in the field she typed in.
    type_into(carol, ".listing .bid-price", "0.02")
    carol.keyboard.press("Enter")
    carol.wait_for_selector(".listing .standing.lead")
    focus_on(carol, ".listing .bid-price")
    assert card.locator(".standing").inner_text() == "You lead"
    assert card.locator(".lead, .outbid").count() == 1  # one standing at a time
    said(alice, f"carol bid 0.02 ETH/kWh on your {LOT_WH} Wh.")

    # bob outbids while carol is typing her next bid: focus, text and caret survive the push.
    carol.keyboard.press("Control+A")
    carol.keyboard.type("0.0")
    bob.bid(listing_id, 3 * 10**16)
    carol.wait_for_selector(".listing .standing.outbid")
    focus_on(carol, ".listing .bid-price")
    assert carol.input_value(".listing .bid-price") == "0.0"
    assert carol.evaluate("document.activeElement.selectionStart") == 3
    assert card.locator(".lead, .outbid").count() == 1
    assert "bob leads" in card.locator(".standing").inner_text()
    said(carol, f"You were outbid on alice's {LOT_WH} Wh: bob bid 0.03 ETH/kWh", urgent=True)
    said(alice, f"bob bid 0.03 ETH/kWh on your {LOT_WH} Wh.")
    carol.keyboard.type("4")
    carol.keyboard.press("Enter")
    carol.wait_for_selector(".listing .standing.lead")
    focus_on(carol, ".listing .bid-price")
    assert card.locator(".lead, .outbid").count() == 1

    # A late bid: the soft close moves the end back, and says so instead of a silent jump.
    listing = runtime.market.listing(listing_id)
    clock.advance(listing["seconds_left"] - 5)
    bob.bid(listing_id, 5 * 10**16)
    carol.wait_for_selector(".listing .standing.outbid")
    focus_on(carol, ".listing .bid-price")
    outbid = said(carol, "bob bid 0.05 ETH/kWh", urgent=True)
    assert "Bidding extended by 10 s: a late bid." in outbid
    assert "Bidding extended by 10 s: a late bid." in said(alice, "bob bid 0.05 ETH/kWh")
    assert card.locator(".extended").inner_text() == "Bidding extended by 10 s: a late bid."
    carol.keyboard.press("Control+A")
    carol.keyboard.type("0.06")
    carol.keyboard.press("Enter")
    carol.wait_for_selector(".listing .standing.lead")
    carol.wait_for_selector("#toast .toast-text:has-text('you lead')")
    _status_bar_stays(carol)

    # The end: carol's card goes, her focus to the list's heading; both hear the result.
    clock.advance(runtime.market.listing(listing_id)["seconds_left"] + 1)
    carol.wait_for_selector(f"#listing-{listing_id}", state="detached")
    focus_on(carol, "#listings-title")
    said(carol, f"You won alice's {LOT_WH} Wh at 0.06 ETH/kWh")
    said(alice, f"Your {LOT_WH} Wh sold to carol at 0.06 ETH/kWh.")


def _deal(alice, carol, runtime) -> None:
    """The deal's start, a milestone and its end said to both; Close connection keeps focus."""
    said(carol, f"started: you buy {LOT_WH} Wh from alice at 0.06 ETH/kWh")
    said(alice, f"started: carol buys your {LOT_WH} Wh at 0.06 ETH/kWh")
    carol.wait_for_selector(".deal.active .close-connection")
    tab_to(carol, ".deal .close-connection", back=True)
    # Delivery pushes redraw the card many times a second: the button keeps the focus.
    # The first milestone passed (25 %, or a later one if a push brought more at once).
    said(carol, " Wh delivered (", once=False)
    said(alice, " Wh delivered (", once=False)
    focus_on(carol, ".deal .close-connection")
    carol.keyboard.press("Enter")
    focus_on(carol, ".deal .close-connection")  # working, and saying so on the button
    wait_for(lambda: runtime.market.deals()[0]["status"] == "closed", timeout=60,
             what="the deal to close on chain")
    carol.wait_for_selector(".deal.closed")
    focus_on(carol, ".deal .deal-title")  # the button went with the deal: focus stays in the card
    ended = said(carol, "ended (")
    assert "Wh delivered" in ended and "ETH paid" in ended
    said(alice, "ended (")


def _intervals(alice, carol, runtime, clock) -> None:
    """Both switch to the interval market and sign standing orders by keyboard; boundaries
    pass while carol types: her focus and text stay, the clearings and fills are said."""
    go(carol, "wallet")
    tab_to(carol, "#deposit-market")
    carol.keyboard.press("ArrowDown")  # Community market
    type_into(carol, "#deposit-amount", "0.5")
    carol.keyboard.press("Enter")
    carol.wait_for_function("document.getElementById('escrow-community').textContent === '0.5'")
    for page, price in ((alice, "0.01"), (carol, "0.02")):
        if page is carol:
            go(page, "market")
        tab_to(page, "#mode-lots")
        page.keyboard.press("ArrowDown")  # the radio group: Interval market
        page.wait_for_selector("#mode-state:has-text('Switching to the interval market')")
        focus_on(page, "#mode-intervals")
        type_into(page, "#order-price", price)
        if page is alice:
            type_into(page, "#order-reserve", "10")
        tab_to(page, "#order-submit")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#order-current:has-text('{price} ETH/kWh')")
        focus_on(page, "#order-submit")
    type_into(carol, "#order-max", "5")  # typing, not yet sent, while intervals pass
    clearings = Clearings(runtime)
    for _ in range(5):
        clearings.pass_boundary(clock)
        if carol.locator("#fills tr.fill[data-side=buy]").count():
            break
    carol.wait_for_selector("#fills tr.fill[data-side=buy]")
    focus_on(carol, "#order-max")
    assert carol.input_value("#order-max") == "5"
    for page in (alice, carol):
        said(page, "You now trade in the interval market")
    alice.wait_for_selector("#fills tr.fill[data-side=sell]")
    for page, verb in ((carol, "bought"), (alice, "sold")):
        for row in page.eval_on_selector_all("#fills tr.fill", FILL_CELLS):  # each said once
            said(page, f"Your standing order {verb} {row[1]} Wh in the interval of {row[0]} at")
    assert any(" cleared" in line for line in carol.eval_on_selector_all("#announce p", TEXTS))


@pytest.mark.parametrize("app", [SLOW_LOAD], indirect=True)
def test_the_whole_trade_of_both_markets_by_keyboard_with_every_change_said(
        server, browser, runtime, clock, login):
    people = {a["name"]: a["address"] for a in runtime.demo_accounts}
    errors: list[str] = []
    alice, carol = (browser.new_context().new_page() for _ in range(2))
    for page in (alice, carol):
        page.on("pageerror", lambda e: errors.append(str(e)))
    carol.clock.install()  # real time flows; fast_forward shows the status bar stays
    pick_login(alice, server, "alice", "alice-demo")
    pick_login(carol, server, "carol", "carol-demo")
    wait_for(lambda: runtime.ledger.token_balance(people["alice"]) >= LOT_WH + 10, what="tokens")
    type_into(carol, "#deposit-amount", "0.5")
    carol.keyboard.press("Enter")
    carol.wait_for_function("document.getElementById('escrow-free').textContent === '0.5'")
    go(carol, "market")
    bob = login("bob").signer
    bob.deposit("0.2")
    wait_for(lambda: runtime.ledger.escrow_free(people["bob"]) > 0, what="bob's deposit")

    _lot_auction(alice, carol, bob, runtime, clock)
    _deal(alice, carol, runtime)
    _intervals(alice, carol, runtime, clock)
    assert errors == []


def _status_bar_stays(page) -> None:
    """The latest message stays in the status bar until replaced or dismissed (ten seconds
    on, still there), and the bar covers nothing at the page's end."""
    text = page.inner_text("#toast .toast-text")
    assert text
    page.clock.fast_forward(10_000)
    assert page.inner_text("#toast .toast-text") == text
    assert page.evaluate("getComputedStyle(document.getElementById('toast')).opacity") == "1"
    assert page.is_visible("#toast")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    covered = page.evaluate("""() => {
      const bar = document.getElementById('toast').getBoundingClientRect();
      return [...document.querySelectorAll('#main .card')].filter(n => n.offsetParent).filter(n => {
        const r = n.getBoundingClientRect();
        return r.bottom > bar.top + 1 && r.top < bar.bottom
          && r.right > bar.left && r.left < bar.right;
      }).map(n => n.id || n.className);
    }""")
    assert covered == []
