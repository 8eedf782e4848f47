"""History that survives a reload (issue 17): closed auctions and one's own sales and wins from
the store, one order of open listings everywhere, the Grid view drawn from the kept day on an
emulated-time axis whose tick labels do not collide — through the API, the live channels, and
real headless Chromium (Debian's, driven by playwright)."""

from __future__ import annotations

import pytest

from tests.common import page_login, wait_for
from web.extensions import socketio
from web.grid_history import GridHistory
from web.state import portal

PRICE = 10**16  # 0.01 ETH per kWh


def _address(runtime, name: str) -> str:
    return next(a["address"] for a in runtime.demo_accounts if a["name"] == name)


def _closed_history(runtime, clock, others: int = 55) -> int:
    """carol won alice's lot long ago; then `others` of bob's lots went unsold: its id."""
    store, now = runtime.store, clock.now()
    alice, bob, carol = (_address(runtime, n) for n in ("alice", "bob", "carol"))
    won = store.add_listing(alice, 30, PRICE, now - 900, now - 800)
    store.add_bid(won, carol, 2 * PRICE, now - 850, 1, 2**40, b"\x01" * 65)
    store.set_listing_status(won, "sold")
    for i in range(others):
        lot = store.add_listing(bob, 10 + i, PRICE, now - 700, now - 600 + i)
        store.set_listing_status(lot, "unsold")
    return won


def _snapshot(app, client, namespace: str) -> dict:
    channel = socketio.test_client(app, namespace=namespace, flask_test_client=client)
    try:
        return next(p["args"][0] for p in channel.get_received(namespace)
                    if p["name"] == "snapshot")
    finally:
        channel.disconnect(namespace)


def test_closed_auctions_come_from_the_store_latest_first_with_ones_own(app, runtime, clock,
                                                                        login):
    won = _closed_history(runtime, clock)
    carol = login("carol")
    served = carol.get("/api/listings/closed").get_json()["listings"]
    ends = [(v["deadline"], v["id"]) for v in served]
    assert ends == sorted(ends, reverse=True)  # the latest to end first
    assert len(served) == 51 and served[-1]["id"] == won  # 50 + her own win, pushed out by others
    assert served[-1]["status"] == "sold" and served[-1]["highest_bidder_name"] == "carol"
    snap = _snapshot(app, carol, "/market")
    assert [v["id"] for v in snap["closed"]] == [v["id"] for v in served]
    assert won not in [v["id"] for v in login("bob").get("/api/listings/closed").get_json()[
        "listings"]]  # bob's page lists the last 50: his own unsold lots
    for bad in ("0", "abc", "501"):
        answer = carol.get(f"/api/listings/closed?limit={bad}")
        assert answer.status_code == 400 and "limit" in answer.get_json()["error"]


def test_open_listings_come_in_one_order_ending_soonest_first(app, runtime, clock, login):
    store, now, bob = runtime.store, clock.now(), _address(runtime, "bob")
    ids = [store.add_listing(bob, 10, PRICE, now, now + left) for left in (90, 30, 60, 30)]
    expected = [ids[1], ids[3], ids[2], ids[0]]
    carol = login("carol")
    assert [v["id"] for v in carol.get("/api/listings").get_json()["listings"]] == expected
    assert [v["id"] for v in _snapshot(app, carol, "/market")["listings"]] == expected


def test_the_grid_snapshot_carries_the_kept_day_on_the_emulated_clock(app, runtime, clock, login):
    feed, factor = portal(app).feed, runtime.market.settings.time_factor
    for _ in range(12):  # a step (5 emulated minutes) each
        clock.advance(300 / factor)
        feed.push_sample()
    snap = _snapshot(app, login("bob"), "/grid")
    history = snap["history"]
    assert len(history["t"]) >= 12 and snap["time_factor"] == factor
    assert history["t"][-1] == pytest.approx(clock.now() * factor)
    assert snap["sample"]["emulated_t"] == pytest.approx(clock.now() * factor, abs=factor)
    producers = [b for b in history["boards"].values() if b["role"] == "producer"]
    assert producers and all(len(b["pv_w"]) == len(history["t"]) for b in producers)


def test_the_kept_day_is_bounded_and_one_sample_a_step():
    history = GridHistory(step_s=300, span_s=86400)
    board = {"board_id": "pv-alice", "owner": "alice", "role": "producer", "online": True,
             "pv_w": 5.0, "soc": 0.5, "power_w": 4.0}
    kept = [history.add(t * 60.0, [board]) for t in range(3 * 1440)]  # 3 days, a minute apart
    series = history.series()
    assert sum(kept) == 3 * 288 and len(series["t"]) == 289  # a day, both ends
    assert series["boards"]["pv-alice"]["soc"][-1] == 50.0
    assert history.add(0.0, [board]) and history.series()["t"] == [0.0]  # clock set back


# -- in the browser ------------------------------------------------------------------------

pytest_browser = pytest.mark.browser


def _market_page(browser, server, name: str, width: int = 1100, context=None):
    """A signed-in page on the market view (a new tab of `context` when given)."""
    page = (context or browser.new_context(viewport={"width": width, "height": 900})).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page_login(page, server, name, f"{name}-demo", "/market")
    page.wait_for_selector("#view-market:not([hidden])")
    return page


def _shown_ids(page) -> list[int]:
    return page.evaluate("[...document.querySelectorAll('#listings .listing')]"
                         ".map(c => Number(c.dataset.id))")


@pytest_browser
def test_a_reload_keeps_closed_auctions_and_tabs_agree_on_the_order(server, browser, app,
                                                                    runtime, clock, login):
    won = _closed_history(runtime, clock, others=5)
    carol = _market_page(browser, server, "carol")  # open before the listings below
    carol.wait_for_selector(f"#history li[data-id='{won}']")
    alice = login("alice").signer
    wait_for(lambda: runtime.ledger.token_balance(alice.account.address) >= 30,
             what="alice's tokens")
    made = [alice.create_listing(10, PRICE, duration)["id"] for duration in (120, 60, 90)]
    expected = [made[1], made[2], made[0]]  # ending soonest first
    wait_for(lambda: len(_shown_ids(carol)) == 3, what="the pushed listings")
    other = _market_page(browser, server, "bob")  # another browser: from the snapshot
    other.wait_for_function("document.querySelectorAll('#listings .listing').length === 3")
    assert _shown_ids(carol) == _shown_ids(other) == expected

    carol.reload()  # a reload forgets the key: sign in again
    page_login(carol, server, "carol", "carol-demo", "/market")
    carol.wait_for_selector(f"#history li[data-id='{won}']")
    items = carol.locator("#history li")
    assert items.count() == 6
    assert "you bought it" in carol.inner_text(f"#history li[data-id='{won}']")
    assert items.first.get_attribute("data-id") != str(won)  # the latest to end first
    assert carol.errors == [] and other.errors == []


TICKS = """(id) => {
  const chart = Chart.getChart(id), scale = chart.scales.x, ctx = chart.ctx;
  ctx.save(); ctx.font = Chart.helpers.toFont(scale.options.ticks.font).string;
  const boxes = scale.ticks.map((t, i) => ({ label: t.label, x: scale.getPixelForTick(i),
    w: ctx.measureText(String(t.label)).width }));
  ctx.restore();
  return { rotation: scale.labelRotation, boxes, min: scale.min, max: scale.max,
    points: chart.data.datasets.reduce((n, d) => n + d.data.length, 0) };
}"""


def _collisions(boxes: list[dict]) -> list[tuple[str, str]]:
    return [(a["label"], b["label"]) for a, b in zip(boxes, boxes[1:], strict=False)
            if a["x"] + a["w"] / 2 + 2 > b["x"] - b["w"] / 2 or a["label"] == b["label"]]


@pytest_browser
def test_the_grid_view_draws_the_kept_day_on_an_emulated_axis_at_390px(server, browser, app,
                                                                      runtime, clock):
    feed, factor = portal(app).feed, runtime.market.settings.time_factor
    for _ in range(24):  # two emulated hours, a kept sample each 5 minutes
        clock.advance(300 / factor)
        feed.push_sample()
    store, now, bob = runtime.store, clock.now(), _address(runtime, "bob")
    carol = _address(runtime, "carol")
    for i in range(6):  # sold auctions for the price chart, a few emulated minutes apart
        lot = store.add_listing(bob, 10, PRICE, now - 10, now - 5 + i * 0.2)
        store.add_bid(lot, carol, PRICE + i * 10**15, now - 8, 1, 2**40, b"\x01" * 65)
        store.set_listing_status(lot, "sold")
    page = _market_page(browser, server, "bob", width=390)
    page.click("nav a[data-route=grid]")
    page.wait_for_function("Number(document.body.dataset.samples) >= 1")
    for chart in ("chart-pv", "chart-soc", "chart-power", "chart-prices"):
        drawn = page.evaluate(TICKS, chart)
        assert drawn["rotation"] == 0 and _collisions(drawn["boxes"]) == [], (chart, drawn)
        if chart != "chart-prices":
            assert drawn["points"] >= 24, chart  # the kept day, before any live sample
            assert drawn["max"] >= now * factor - 3600  # emulated seconds, not the wall clock
    assert "emulator" in page.inner_text("#grid-axis")
    assert page.errors == []
