"""Login time in Chromium at the default scrypt cost (geth's 2**18): the page unlocks the
keystore itself (ethers' scrypt in JavaScript), then signs the portal's SIWE message.

Prints the unlock time (click to progress 100 %) and the whole login (click to signed in),
each the median of a few logins. Run: .venv/bin/python bench/login.py [rounds]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time

from werkzeug.serving import make_server

from web import DEFAULTS, create_app, start_runtime

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def one_login(browser, base: str) -> tuple[float, float]:
    """(unlock s, login s) of one login as carol in a fresh page."""
    page = browser.new_context().new_page()
    page.goto(f"{base}/login")
    page.fill("#account", "carol")
    page.fill("#passphrase", "carol-demo")
    started = time.perf_counter()
    page.click("#login-button")
    page.wait_for_function(
        "document.getElementById('unlock-progress').getAttribute('aria-valuenow') === '100'",
        timeout=120_000, polling=20)
    unlocked = time.perf_counter()
    page.wait_for_selector("body.logged-in", timeout=60_000)
    done = time.perf_counter()
    page.context.close()
    return unlocked - started, done - started


def main(rounds: int = 3) -> None:
    from playwright.sync_api import sync_playwright

    n = DEFAULTS["SCRYPT_N"]
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
                          "DATA_DIR": f"{tmp}/var", "SECRET_KEY": "bench", "SCRYPT_N": n,
                          "DEMO_ACCOUNTS": True})
        runtime = start_runtime(app)
        http = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{http.server_port}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                times = [one_login(browser, base) for _ in range(rounds)]
                browser.close()
        finally:
            http.shutdown()
            runtime.stop()
    unlock = statistics.median(t[0] for t in times)
    whole = statistics.median(t[1] for t in times)
    print(f"Login in Chromium, keystore at scrypt N=2**{n.bit_length() - 1} (median of {rounds})")
    print(f"  unlock in the page (ethers scrypt) {unlock:6.2f} s")
    print(f"  whole login (unlock + SIWE)        {whole:6.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
