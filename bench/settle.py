"""Auction close -> deal on chain -> relays on, stage by stage, on the embedded chain and anvil.

The portal's runtime (`create_app` + `start_runtime`, its own market loop at the default tick)
with emulated boards; a hand-driven clock moves each auction past its deadline, and the bench
stamps what follows: the market closes the auction (`listing_closed`), sends `openDeal`
(transaction pending), the escrow's receipt arrives (mined), the deal is published active, and
both boards report their relay closed. Goal: relays on within 1 s of the deadline.
Run: .venv/bin/python bench/settle.py [--json FILE]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geth_private.anvil import find_anvil  # noqa: E402
from gridbid_client.local import LocalParty  # noqa: E402
from marketplace.clock import ManualClock  # noqa: E402

DEALS = 8
GOAL_S = 1.0
STAGES = ("auction closed", "openDeal sent", "openDeal mined", "deal active", "relays on")


def measure(uri: str, deals: int = DEALS) -> list[dict[str, float]]:
    """Per deal, ms from the deadline passing to each stage."""
    from web import create_app, start_runtime

    clock = ManualClock(start=time.time())
    with tempfile.TemporaryDirectory(prefix="gridbid-settle-") as data:
        app = create_app({"DATA_DIR": data, "CHAIN_URI": uri, "CHAIN_FALLBACK": False,
                          "SCRYPT_N": 2**10, "CLOCK": clock, "EMULATOR_SPEED": 600.0,
                          "SECRET_KEY": "bench", "DEMO_ACCOUNTS": True})
        runtime = start_runtime(app)
        stamps: dict[str, float] = {}
        lock = threading.Lock()

        def stamp(stage: str) -> None:
            with lock:
                stamps.setdefault(stage, time.perf_counter())

        def on_hub(topic: str, payload: dict) -> None:
            if topic == "listing_closed" and payload.get("status") == "sold":
                stamp("auction closed")
            elif topic == "deal_updated" and payload.get("status") == "active":
                stamp("deal active")

        def on_tx(record) -> None:
            if record.label.startswith("Open deal"):
                stamp({"pending": "openDeal sent", "mined": "openDeal mined"}.get(
                    record.status, "openDeal " + record.status))

        runtime.hub.subscribe(on_hub)
        runtime.txm.subscribe(on_tx)
        try:
            market, grid = runtime.market, runtime.microgrid
            # Each participant signs its own deposit, listing approval, bid and closeDeal.
            people = {a["name"]: LocalParty(market, runtime.wallets, runtime.keystore.unlock(
                a["address"], a["passphrase"])) for a in runtime.demo_accounts}
            runtime.ledger.wait(people["bob"].deposit(10**18))
            while runtime.ledger.token_balance(people["alice"].address) < 5 * deals:
                time.sleep(0.1)
            rows = []
            for _ in range(deals):
                listing = people["alice"].list(5, 1000, 30)
                people["bob"].bid(listing["id"], 1000)
                # The seller's approval, signed with the listing, is queued, not awaited: it is
                # mined before the deadline passes, as the auction's real minutes would see to.
                while runtime.txm.pending(people["alice"].address):
                    time.sleep(0.01)
                time.sleep(0.05)  # the listing's and the bid's own transactions settle first
                with lock:
                    stamps.clear()
                clock.advance(31)
                start = time.perf_counter()
                while not (grid.reading("pv-alice").relays[0]
                           and grid.reading("load-bob").relays[0]):
                    if time.perf_counter() - start > 30:
                        raise SystemExit(f"{uri}: relays not on 30 s after the deadline")
                    time.sleep(0.001)
                stamp("relays on")
                while "deal active" not in stamps and time.perf_counter() - start < 5:
                    time.sleep(0.001)
                with lock:
                    rows.append({k: (v - start) * 1000 for k, v in stamps.items()})
                deal = market.deals()[0]
                people["bob"].close(deal["id"])
                while market.deal(deal["id"])["status"] != "closed":
                    time.sleep(0.01)
        finally:
            runtime.stop()
    return rows


def report(results: dict[str, list[dict[str, float]]], tick_ms: float) -> str:
    """Median and max ms from the deadline to each stage, per backend."""
    lines = [f"auction deadline -> relays on, {DEALS} deals per chain, market tick "
             f"{tick_ms:.0f} ms (goal <= {GOAL_S * 1000:.0f} ms);"
             " ms since the deadline, median (max)",
             f"{'chain':<13}" + "".join(f"{s:>17}" for s in STAGES) + "  goal"]
    for uri, rows in results.items():
        cells = []
        for stage in STAGES:
            values = [r[stage] for r in rows if stage in r]
            cells.append(f"{statistics.median(values):.0f} ({max(values):.0f})" if values else "-")
        worst = max(r["relays on"] for r in rows)
        lines.append(f"{uri:<13}" + "".join(f"{c:>17}" for c in cells)
                     + ("  ok" if worst <= GOAL_S * 1000 else "  MISSED"))
    return "\n".join(lines)


def main() -> None:
    from web import DEFAULTS

    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    uris = ["embedded://"] + (["anvil://"] if find_anvil() else [])
    results = {uri: measure(uri) for uri in uris}
    text = report(results, DEFAULTS["TICK_S"] * 1000)
    if not find_anvil():
        text += "\n(anvil not installed: `npm ci` installs it)"
    print(text)
    if out:
        Path(out).write_text(json.dumps({"results": results, "tick_s": DEFAULTS["TICK_S"]}))


if __name__ == "__main__":
    main()
