"""A bid's own CPU in the portal process, outside the broadcast: the terms request and the signed
bid request through Flask's test client, each timed on its thread's CPU clock (the bidder's
signing excluded), the runtime's loops running beside them; --profile FILE adds cProfile.
Run: .venv/bin/python bench/bid_cpu.py [--bids N] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LANES = 10


def start(data_dir: str):
    """The portal app with its runtime started (embedded chain, demo boards), as tests make it."""
    from web import create_app, start_runtime

    app = create_app({
        "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False, "SECRET_KEY": "bench",
        "DEMO_ACCOUNTS": True, "DATA_DIR": data_dir, "SCRYPT_N": 2**10,
        "EMULATOR_SPEED": 600.0, "PV_PEAK_W": 2000, "MAX_RATED_POWER_W": 2_000_000,
    })
    return app, start_runtime(app)


def signed_in(app, runtime, name: str):
    """A Flask test client signed in as a demo account (SIWE signed here)."""
    from gridbid_client.client import Client
    from gridbid_client.transport import FlaskTransport

    client = app.test_client()
    demo = {a["name"]: a for a in runtime.demo_accounts}[name]
    key = runtime.keystore.unlock(demo["address"], demo["passphrase"])
    client.signer = Client(FlaskTransport(client), key)
    client.signer.login()
    client.environ_base["HTTP_X_CSRF_TOKEN"] = client.signer.csrf
    return client


def bids(clients: dict, lots: list[dict], count: int, profile: cProfile.Profile | None,
         price: dict[int, int]):
    """count bids round robin over lots, bob and carol taking turns; (terms, bid) thread CPU s."""
    from contracts.bindings import sign_bid

    timed = []
    for i in range(count):
        lid = lots[i % len(lots)]["id"]
        client = clients[("bob", "carol")[(i // len(lots)) % 2]]
        t0 = time.thread_time()
        profile and profile.enable()
        answer = client.post(f"/api/listings/{lid}/bids/terms", json={"price_wei": str(price[lid])})
        profile and profile.disable()
        t1 = time.thread_time()
        terms = answer.get_json()
        assert "message" in terms, terms
        bid = {k: v if k in ("offer", "buyer", "buyerMeter") else int(v)
               for k, v in terms["message"].items()}
        signature = sign_bid(client.signer.account, int(terms["domain"]["chainId"]),
                             terms["domain"]["verifyingContract"], bid)
        t2 = time.thread_time()
        profile and profile.enable()
        answer = client.post(f"/api/listings/{lid}/bids",
                             json={"bid": terms["message"], "signature": "0x" + signature.hex()})
        profile and profile.disable()
        t3 = time.thread_time()
        assert answer.status_code == 201, answer.get_json()
        price[lid] = int(answer.get_json()["min_next_bid_wei"])
        timed.append((t1 - t0, t3 - t2))
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=300)
    parser.add_argument("--profile")
    args = parser.parse_args()
    from tests.marketplace.common import ready

    with tempfile.TemporaryDirectory() as data_dir:
        app, runtime = start(data_dir)
        try:
            people = ready(runtime, wh=LANES)
            lots = [people["alice"].list(1, 1000, 3600) for _ in range(LANES)]
            clients = {name: signed_in(app, runtime, name) for name in ("bob", "carol")}
            price = {lot["id"]: int(lot["min_next_bid_wei"]) for lot in lots}
            bids(clients, lots, 40, None, price)  # warm: caches, first statements
            profile = cProfile.Profile(time.thread_time) if args.profile else None
            timed = bids(clients, lots, args.bids, profile, price)
        finally:
            runtime.stop()
    if profile:
        profile.dump_stats(args.profile)
    terms = [t for t, _ in timed]
    bid = [b for _, b in timed]
    print(f"{len(timed)} bids: terms p50 {statistics.median(terms) * 1e3:.2f} ms "
          f"mean {statistics.mean(terms) * 1e3:.2f}; bid p50 {statistics.median(bid) * 1e3:.2f} ms "
          f"mean {statistics.mean(bid) * 1e3:.2f}; both mean "
          f"{(statistics.mean(terms) + statistics.mean(bid)) * 1e3:.2f} ms (thread CPU)")


if __name__ == "__main__":
    main()
