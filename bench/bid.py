"""A bid's round trip over HTTP as its bidder sees it: from pressing Buy to the portal's answer.

Now (keys stay with their owners) a bid is signed by the bidder: the Python client and the page
build the EIP-712 bid from the listing's view, sign it and post once; an API user may still ask
for the terms first (`/bids/terms`, an optional pre-check: two requests). On commits before
the signed API (0b1cb99 and earlier) the portal signed with the key it held, in one POST: run
this script there too (it detects which API it talks to) and compare the medians taken on one
machine.

Run: .venv/bin/python bench/bid.py [bids]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time

import requests
from werkzeug.serving import make_server

from web import create_app, start_runtime

ETH = 10**18


def portal(tmp: str):
    """The portal on the embedded chain, served over HTTP on a loopback port."""
    app = create_app({"CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False, "SECRET_KEY": "b",
                      "DATA_DIR": tmp, "SCRYPT_N": 2**10, "DEMO_ACCOUNTS": True,
                      "EMULATOR_SPEED": 600.0, "TICK_S": 0.2, "LOGIN_BURST": 1000})
    runtime = start_runtime(app)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return runtime, http, f"http://127.0.0.1:{http.server_port}"


def signed_api(runtime, url: str, rounds: int) -> dict[str, list[float]]:
    """Round trips of the client's bid (built from the view, one post) and of a bid whose
    terms are asked for first (two requests)."""
    from eth_account import Account

    from gridbid_client import checks
    from gridbid_client.client import Client

    keys = {a["name"]: runtime.keystore.unlock(a["address"], a["passphrase"])
            for a in runtime.demo_accounts}
    alice, bob = Client(url, keys["alice"]), Client(url, keys["bob"])
    alice.login()
    bob.login()
    bob.wait_tx(bob.deposit("5")["tx_hash"])
    while runtime.ledger.token_balance(keys["alice"].address) < 20:
        time.sleep(0.2)
    view = alice.create_listing(10, 1000, 3600)
    lid, times = view["id"], {"client (build, sign, post)": [], "with terms (ask, sign, post)": []}
    price = 1000
    for _ in range(rounds):
        price += 1000
        started = time.perf_counter()
        view = bob.bid(view, price)  # the answer is the view the next bid is built from
        times["client (build, sign, post)"].append(time.perf_counter() - started)
        price += 1000
        started = time.perf_counter()
        terms = bob.post(f"/api/listings/{lid}/bids/terms", {"price_wei": str(price)})
        typed = checks.bid_terms(terms, view, price, keys["bob"].address, None)
        signature = Account.sign_typed_data(keys["bob"].key, full_message=typed).signature
        view = bob.post(f"/api/listings/{lid}/bids", {"bid": terms["message"],
                                                       "signature": "0x" + bytes(signature).hex()})
        times["with terms (ask, sign, post)"].append(time.perf_counter() - started)
    return times


def server_signed_api(runtime, url: str, rounds: int) -> dict[str, list[float]]:
    """Round trips of the old single POST, the portal signing with the key it held."""
    def login(name: str) -> requests.Session:
        session = requests.Session()
        session.headers["X-CSRF-Token"] = session.get(f"{url}/api/csrf").json()["csrf"]
        answer = session.post(f"{url}/api/login",
                              json={"account": name, "passphrase": f"{name}-demo"}).json()
        session.headers["X-CSRF-Token"] = answer["csrf"]
        return session

    alice, bob = login("alice"), login("bob")
    bob.post(f"{url}/api/escrow/deposit", json={"amount_eth": "5"})
    while int(bob.get(f"{url}/api/wallet").json()["escrow_free_wei"]) < 5 * ETH or \
            bob.get(f"{url}/api/wallet").json() is None:
        time.sleep(0.2)
    while alice.get(f"{url}/api/wallet").json()["tokens_wh"] < 20:
        time.sleep(0.2)
    lid = alice.post(f"{url}/api/listings", json={"energy_wh": 10, "start_price_wei": 1000,
                                                  "duration_s": 3600}).json()["id"]
    times: list[float] = []
    for i in range(rounds):
        started = time.perf_counter()
        answer = bob.post(f"{url}/api/listings/{lid}/bids", json={"price_wei": 2000 + 1000 * i})
        times.append(time.perf_counter() - started)
        assert answer.status_code == 201, answer.text
    return {"portal signs (one post)": times}


def main(rounds: int = 50) -> None:
    """Print the median and 90th percentile of each way of bidding."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime, http, url = portal(tmp)
        try:
            signed = requests.get(f"{url}/api/chain").status_code == 200  # the signed API
            measured = (signed_api if signed else server_signed_api)(runtime, url, rounds)
        finally:
            http.shutdown()
            runtime.stop()
    for name, times in measured.items():
        times.sort()
        print(f"bid round trip, {name}: median {statistics.median(times) * 1000:.1f} ms, "
              f"p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms over {len(times)} bids")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
