"""Every view a person sees passes axe-core (WCAG 2.0-2.2 A/AA and best practice) at desktop
and phone width, in Debian's headless Chromium, and is photographed into test-artifacts/.

One portal per module, set up once through the Python client: alice has a listing carol won
(a deal delivering slowly, so it stays open) and a second one bob and carol bid on. axe-core
comes from npm's package (node_modules), injected into the page by the test: the portal never
serves it. A failure lists every violation: view, width, rule, the elements, what is wrong.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.common import page_login, signed_in, wait_for

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("GRIDBID_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
ETH = 10**18


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """(url, app, clock): one portal served over HTTP for the module's views."""
    from werkzeug.serving import make_server

    from marketplace.clock import ManualClock
    from web import create_app, start_runtime

    clock = ManualClock(start=time.time())
    app = create_app({
        "TESTING": True, "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
        "SECRET_KEY": "test", "DEMO_ACCOUNTS": True,
        "DATA_DIR": str(tmp_path_factory.mktemp("axe") / "var"), "SCRYPT_N": 2**10,
        "CLOCK": clock, "EMULATOR_SPEED": 600.0, "TICK_S": 0.05, "EVENT_POLL_S": 0.1,
        "WALLET_PUSH_S": 0.2, "GRID_PUSH_S": 0.5,
        "LOAD_W": 1,  # 1/6 Wh a second at 600x: the won deal is still delivering at the end
    })
    runtime = start_runtime(app)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", app, clock
    finally:
        http.shutdown()
        runtime.stop()


@pytest.fixture(scope="module")
def market(portal):
    """The trading state the views are checked in: an open deal and a listing with two bids."""
    from gridbid_client.transport import FlaskTransport
    from web.state import portal as state

    _, app, clock = portal
    runtime = state(app).runtime
    accounts = {a["name"]: a for a in runtime.demo_accounts}

    def client(name):
        key = runtime.keystore.unlock(accounts[name]["address"], accounts[name]["passphrase"])
        return signed_in(FlaskTransport(app.test_client()), key)

    alice, bob, carol = client("alice"), client("bob"), client("carol")
    wait_for(lambda: runtime.ledger.token_balance(accounts["alice"]["address"]) >= 70,
             what="alice's tokens")
    for buyer in (bob, carol):
        buyer.wait_tx(buyer.deposit("0.5")["tx_hash"])
    won = alice.create_listing(40, 10**16, 30)
    carol.bid(won["id"], 2 * 10**16)
    clock.advance(31)
    wait_for(lambda: any(d["status"] == "active" for d in runtime.market.deals()),
             what="carol's deal to open")
    open_lot = alice.create_listing(20, 10**16, 3600)
    bob.bid(open_lot["id"], 2 * 10**16)
    return {"runtime": runtime, "bob": bob, "open_lot": open_lot["id"]}


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium (never playwright's own download), one per module."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: `make test` installs Debian's chromium")
    if not AXE.exists():
        pytest.skip(f"{AXE} missing: `make deps` installs npm's axe-core")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def pages(portal, market, browser):
    """pages(who) -> a page logged in as who (None: logged out), opened once per module."""
    url = portal[0]
    opened: dict = {}
    runtime = market["runtime"]
    people = runtime.demo_accounts + runtime.admin_accounts
    passphrases = {a["name"]: a["passphrase"] for a in people}

    def page(who):
        if who not in opened:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            opened[who] = context.new_page()
            if who is None:
                opened[who].goto(f"{url}/login")
            else:
                page_login(opened[who], url, who, passphrases[who])
        return opened[who]

    yield page
    for page_ in opened.values():
        page_.context.close()


def axe_violations(page) -> list[dict]:
    """axe-core's violations of TAGS on the page as it is now (injected once per document)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    return page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))})))",
        TAGS)


def readable(where: str, violations: list[dict]) -> str:
    """One block per violation: rule, impact, what it asks, then each element and its fault."""
    lines = []
    for v in violations:
        lines.append(f"{where}: {v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def check_view(page, view: str, shot: str, ready: str | None = None) -> None:
    """Show view, then at each width: wait for ready, photograph, and fail on any violation."""
    page.set_viewport_size({"width": 1280, "height": 900})
    if page.evaluate("document.body.dataset.view") != view:
        page.click(f"nav a[data-route={view}]")
    page.wait_for_selector(f"#view-{view}:not([hidden])")
    if ready:
        page.wait_for_selector(ready, state="attached")
    ARTIFACTS.mkdir(exist_ok=True)
    found = []
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_function(f"window.innerWidth === {width}")
        page.screenshot(path=ARTIFACTS / f"{shot}-{width}.png", full_page=True)
        violations = axe_violations(page)
        if violations:
            found.append(readable(f"{shot} at {width} px ({label})", violations))
    assert not found, "axe-core violations:\n" + "\n".join(found)


@pytest.mark.parametrize("view", ["login", "register", "chain"])
def test_logged_out_view_passes_axe(pages, view):
    ready = {"login": "#account-pick option >> nth=1", "chain": "#view-chain dd"}.get(view)
    check_view(pages(None), view, f"logged-out-{view}", ready)


@pytest.mark.parametrize("view,ready", [
    ("market", ".deal.active .close-connection"),
    ("wallet", "#escrow-locked:not(:text('–'))"),
    ("grid", "#boards-now tbody tr"),
])
def test_consumer_view_passes_axe(pages, market, view, ready):
    page = pages("carol")
    if view == "market":  # carol bids in the page, then bob outbids her: her card says so
        page.click("nav a[data-route=market]")
        card = page.locator(f".listing[data-id='{market['open_lot']}']")
        card.locator(".bid-price").fill("0.03")
        card.locator("button[type=submit]").click()
        page.wait_for_selector(".listing .lead")
        market["bob"].bid(market["open_lot"], 4 * 10**16)
        page.wait_for_selector(".listing .outbid")
    check_view(page, view, f"consumer-{view}", ready)


@pytest.mark.parametrize("view,ready", [
    ("market", ".listing .highest"),
    ("wallet", "#tokens:not(:text('–'))"),
    ("grid", "#boards-now tbody tr"),
])
def test_producer_view_passes_axe(pages, view, ready):
    page = pages("alice")
    if view == "market":
        page.click("nav a[data-route=market]")
        page.wait_for_selector(".deal.active")
    check_view(page, view, f"producer-{view}", ready)


def test_admin_view_passes_axe(pages):
    page = pages("admin")
    check_view(page, "admin", "admin", "#boards tr[data-board='load-carol']")


def luminance(rgb: tuple[float, ...]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
           for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG contrast ratio of two colours."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# The focused element's outline colour and width, and the first opaque background behind it
# (from its parent up: the ring is drawn outside the element, over what it sits on).
RING = """() => {
  const el = document.activeElement;
  if (el === document.body) return null;  // past the last stop: focus left the page
  const style = getComputedStyle(el);
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  let behind = el.parentElement, bg = [255, 255, 255, 1];
  for (; behind; behind = behind.parentElement) {
    const c = rgb(getComputedStyle(behind).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
  }
  return {what: el.id || el.textContent.trim().slice(0, 30), style: style.outlineStyle,
          width: parseFloat(style.outlineWidth), ring: rgb(style.outlineColor), bg};
}"""


@pytest.mark.parametrize("who", [None, "carol"])
def test_focus_ring_stands_out_3_to_1_wherever_it_is_drawn(pages, who):
    page = pages(who)
    page.click("nav a[data-route=chain]" if who is None else "nav a[data-route=market]")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("body").click(position={"x": 1, "y": 1})  # start the Tab order at the top
    faint, seen = [], 0
    for _ in range(25):  # the header's links, then the view's cards and their controls
        page.keyboard.press("Tab")
        ring = page.evaluate(RING)
        if ring is None:
            continue
        seen += 1
        ratio = contrast(ring["ring"], ring["bg"])
        if ring["style"] == "none" or ring["width"] < 2 or ratio < 3:
            faint.append(f"{ring['what']!r}: {ring['style']} {ring['width']}px,"
                         f" {ratio:.1f}:1 on {ring['bg']}")
    assert seen >= 5
    assert not faint, "focus rings under 3:1 (or missing):\n" + "\n".join(faint)
