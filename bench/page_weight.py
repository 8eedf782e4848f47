"""Bytes and requests each view of the portal's page costs, as Debian's Chromium loads them.

A fresh browser context (cold cache) per row, the portal served by werkzeug on the embedded
chain with the demo accounts. `login` is the logged-out page; every other row is a visit to
that view's address: the page (shown on its login view first), the login, the view, until the
network was quiet; `market+grid` is what opening the Grid view after the market added.
Per row: requests, bytes on the wire (encoded bodies: gzip where the portal sent it) and the
same bodies decompressed.
Run: .venv/bin/python bench/page_weight.py   (against another tree: PYTHONPATH=TREE)
"""

from __future__ import annotations

import tempfile
import threading
import time

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Ledger:
    """Requests a page made since the last take(): count, wire bytes, decoded bytes."""

    def __init__(self, page) -> None:
        self.rows: list = []
        page.on("requestfinished", lambda request: self.rows.append(request))

    def take(self) -> tuple[int, int, int]:
        rows, self.rows = self.rows, []
        wire = decoded = 0
        for request in rows:
            response = request.response()
            if response is None or request.url.startswith("ws"):
                continue
            wire += request.sizes()["responseBodySize"]
            try:
                decoded += len(response.body())
            except Exception:  # noqa: BLE001 - a streamed poll has no kept body
                pass
        return len(rows), wire, decoded


def serve():
    """(url, stop): the portal with demo accounts on the embedded chain."""
    from werkzeug.serving import make_server

    from web import create_app, start_runtime

    app = create_app({"SECRET_KEY": "bench", "DEMO_ACCOUNTS": True, "CHAIN_URI": "embedded://",
                      "CHAIN_FALLBACK": False, "DATA_DIR": tempfile.mkdtemp() + "/var",
                      "SCRYPT_N": 2**10, "EMULATOR_SPEED": 600.0})
    runtime = start_runtime(app)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    def stop() -> None:
        http.shutdown()
        runtime.stop()

    return f"http://127.0.0.1:{http.server_port}", stop, runtime


def land(browser, url: str, who: str, passphrase: str, view: str):
    """(page, ledger row) after logging in on /view and the network going quiet."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    ledger = Ledger(page)
    page.goto(f"{url}/{view}")
    page.wait_for_load_state("networkidle")
    page.fill("#account", who)
    page.fill("#passphrase", passphrase)
    page.click("#login-button")
    page.wait_for_selector(f"body.logged-in #view-{view}:not([hidden])", timeout=60_000)
    settle(page)
    return page, ledger, ledger.take()


def settle(page) -> None:
    """Until what the shown view loads lazily is in (the Grid's charts drawn) and quiet."""
    if page.evaluate("document.body.dataset.view") == "grid":
        page.wait_for_function("window.Chart && Chart.getChart('chart-power')", timeout=60_000)
    page.wait_for_load_state("networkidle")
    time.sleep(1.0)  # a live channel's first polls


def main() -> None:
    """Print one row per view."""
    from playwright.sync_api import sync_playwright

    import web

    url, stop, runtime = serve()
    admin = runtime.admin_accounts[0]["passphrase"]
    print(f"tree: {web.__file__}")
    print(f"{'view':<14}{'requests':>9}{'wire bytes':>12}{'decoded':>10}")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_context().new_page()
            ledger = Ledger(page)
            page.goto(f"{url}/login")
            page.wait_for_load_state("networkidle")
            rows = [("login", ledger.take())]
            for view in ("wallet", "market", "grid"):
                page, ledger, row = land(browser, url, "carol", "carol-demo", view)
                rows.append((view, row))
                if view == "market":
                    page.click("nav a[data-route=grid]")
                    page.wait_for_selector("#view-grid:not([hidden])")
                    settle(page)
                    rows.append(("market+grid", ledger.take()))
            rows.append(("admin", land(browser, url, "admin", admin, "admin")[2]))
            browser.close()
    finally:
        stop()
    for name, (count, wire, decoded) in rows:
        print(f"{name:<14}{count:>9}{wire:>12,}{decoded:>10,}")


if __name__ == "__main__":
    main()
