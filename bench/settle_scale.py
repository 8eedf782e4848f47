"""A settlement pass at 10, 100 and 1,000 open deals: time, chain reads and sends.

The chain is real (the embedded py-evm chain, both contracts, N deals opened on the escrow from
signed offers and bids, as bench/gas.py sets them up); the market's Settlement runs on a SQLite
store holding the N deals as delivering. The boards are a stand-in that is always online and
has no reading (this bench is about the chain side; a board's reading is a cache lookup).
RPC calls are counted with a web3 middleware (geth_private.counting), in the pass's thread, and
timed by another (NodeTime): "market ms" is the pass's time less the time it waited on the node
(the embedded chain's eth_getLogs finds each log's receipt by walking its blocks, so it grows with
the chain's length; a real node's does not).

Per N it prints: an idle pass (nothing due), a pass where a tenth of the deals are past their
expiry (the operator closes each: sends grow with what is due), the pass after it (applies
their DealClosed events), a sweep (the pass that visits every live deal, every
marketplace.agenda.SWEEP_S), and for contrast what the old pass's per-deal getDeal reads cost.
Each pass says how many deals it visited.
Run: .venv/bin/python bench/settle_scale.py [--sizes 10,100,1000] [--markdown]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web3.middleware import Web3Middleware  # noqa: E402

from bench.gas import DEAL_DURATION, NOTICE, PRICE, Bench  # noqa: E402
from firmware_bridge.boards import Boards  # noqa: E402
from geth_private import TxManager  # noqa: E402
from geth_private.counting import RpcCounter  # noqa: E402
from geth_private.embedded import EmbeddedBackend  # noqa: E402
from marketplace.clock import ManualClock  # noqa: E402
from marketplace.events import Hub  # noqa: E402
from marketplace.ledger import Ledger  # noqa: E402
from marketplace.settings import Settings  # noqa: E402
from marketplace.settlement import Settlement  # noqa: E402
from marketplace.states import DealState  # noqa: E402
from marketplace.store import Store  # noqa: E402
from marketplace.switchboard import Switchboard  # noqa: E402

SIZES = (10, 100, 1000)
IDLE_PASSES = 7  # idle passes per size: the table shows their median time, their most reads


class AlwaysOnline(Boards):
    """Boards that are online and have no reading yet (the bench measures the chain side)."""

    def serves(self, board_id: str) -> bool:
        return True

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        pass

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        pass

    def online(self, board_id: str) -> bool:
        return True

    def reading(self, board_id: str):
        return None

    def read(self, board_id: str):
        raise LookupError("no reading in this bench")

    def signed_reading(self, board_id: str):
        return None


class NodeTime:
    """The time one thread spends in JSON-RPC calls through a Web3 instance (a middleware)."""

    def __init__(self, w3) -> None:
        self.seconds = 0.0
        self._thread = threading.get_ident()
        clock = self

        class _Timing(Web3Middleware):
            def wrap_make_request(self, make_request):
                def middleware(method, params):
                    if threading.get_ident() != clock._thread:
                        return make_request(method, params)
                    start = time.perf_counter()
                    try:
                        return make_request(method, params)
                    finally:
                        clock.seconds += time.perf_counter() - start

                return middleware

        w3.middleware_onion.add(_Timing, name="bench-node-time")


class Chain(Bench):
    """bench/gas.py's parties and contracts, on the portal's embedded backend."""

    def __init__(self, backend: EmbeddedBackend):  # noqa: D107 (Bench's set-up, fewer steps)
        from eth_account import Account

        self.tester, self.w3 = backend.tester, backend.w3
        self.chain_id = self.w3.eth.chain_id
        accounts = self.w3.eth.accounts
        self.admin, self.seller, self.buyer, self.seller_meter, self.buyer_meter = accounts[:5]
        keys = backend.tester.backend.account_keys
        self.keys = {a: Account.from_key(keys[i].to_bytes()) for i, a in enumerate(accounts)}
        self.gas = {}
        self.token = self.deploy("EnergyToken", self.admin, 1_000_000)
        self.escrow = self.deploy("EnergyEscrow", self.token.address, self.admin, NOTICE,
                                  DEAL_DURATION)
        token, escrow = self.token.functions, self.escrow.functions
        self.send(token.grantRole(token.ESCROW_ROLE().call(), self.escrow.address), self.admin)
        self.enroll(self.seller_meter, self.seller, 1, 100_000)
        self.enroll(self.buyer_meter, self.buyer, 2, 100_000)
        self.tester.time_travel(self.now() + 10)
        self.mint([(self.seller_meter, 0)])
        self.tester.time_travel(self.now() + 3600)
        self.mint([(self.seller_meter, 50_000)])
        self.permit(self.seller, 10**9)
        self.send(escrow.deposit(0), self.buyer, value=10**18)
        self.offers = 0


def build(n: int, data: Path) -> tuple[Settlement, Chain, RpcCounter, ManualClock, NodeTime]:
    """N deals open on the escrow and delivering in the store; the settlement over them."""
    backend = EmbeddedBackend()
    backend.start()
    chain = Chain(backend)
    txm = TxManager(backend)
    ledger = Ledger(txm, chain.keys[chain.admin])
    ledger.attach({"EnergyToken": chain.token.address, "EnergyEscrow": chain.escrow.address})
    store = Store(data / f"market-{n}.sqlite")
    store.add_participant(chain.seller, "seller", "producer", "board-seller", chain.seller_meter)
    store.add_participant(chain.buyer, "buyer", "consumer", "board-buyer", chain.buyer_meter)
    clock = ManualClock(start=float(chain.now()))
    for i in range(n):
        chain_id, _ = chain.open_deal(1)
        record = chain.escrow.functions.getDeal(chain_id).call()
        listing = store.add_listing(chain.seller, 1, PRICE, clock.now(), clock.now())
        did = store.add_deal(listing, chain.buyer, chain.seller, PRICE, 1)
        # A tenth expires with the escrow's deal; the rest later in the store (not due here).
        later = 0 if i % 10 == 0 else 2 * DEAL_DURATION + 3600
        store.update_deal(did, status=DealState.ACTIVE, chain_deal_id=chain_id,
                          expires_at=int(record[15]) + later, baseline_wh=0.0,
                          opened=clock.now())
    switchboard = Switchboard(AlwaysOnline(), store)
    settlement = Settlement(store, ledger, switchboard, clock, Hub(), Settings(),
                            threading.RLock())
    settlement.advance_all()  # the first pass reads the chain's history once (not measured)
    return settlement, chain, RpcCounter(backend.w3), clock, NodeTime(backend.w3)


def timed_pass(settlement: Settlement, counter: RpcCounter, node: NodeTime) -> dict[str, float]:
    """One advance_all: ms (and less the node's time), RPC reads, getLogs calls, sends."""
    before = len(settlement.transactions())
    with counter.counting() as calls:
        waited, start = node.seconds, time.perf_counter()
        settlement.advance_all()
        ms = (time.perf_counter() - start) * 1000
    market = ms - (node.seconds - waited) * 1000
    return {"ms": ms, "market_ms": market, "reads": counter.reads(),
            "logs": calls["eth_getLogs"],
            "sends": len(settlement.transactions()) - before,
            "visits": settlement.agenda.visits}


def measure(n: int, data: Path) -> dict[str, dict[str, float]]:
    """The figures of one size (the idle pass: the median of IDLE_PASSES)."""
    settlement, chain, counter, clock, node = build(n, data)
    idles = [timed_pass(settlement, counter, node) for _ in range(IDLE_PASSES)]
    idle = {**idles[-1], "ms": statistics.median(p["ms"] for p in idles),
            "market_ms": statistics.median(p["market_ms"] for p in idles),
            "reads": max(p["reads"] for p in idles),
            "visits": max(p["visits"] for p in idles)}
    chain.tester.time_travel(chain.now() + DEAL_DURATION + 60)  # the escrow lets them close
    clock.advance(DEAL_DURATION + 60)  # a tenth of the deals is past its expiry now
    closing = timed_pass(settlement, counter, node)
    settlement.ledger.txm.poll()
    applied = timed_pass(settlement, counter, node)
    closed = len(settlement.store.deals(DealState.CLOSED))
    settlement.agenda.sweep_soon()
    sweep = timed_pass(settlement, counter, node)
    with counter.counting() as calls:
        start = time.perf_counter()
        for row in settlement.store.live_deals():
            settlement.ledger.chain_deal(row["chain_deal_id"])
        old = {"ms": (time.perf_counter() - start) * 1000, "reads": counter.reads(),
               "logs": calls["eth_getLogs"], "sends": 0}
    return {"idle": idle, "due": closing, "after": {**applied, "closed": closed},
            "sweep": sweep, "old": old}


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    """The figures as a markdown table."""
    lines = ["| open deals | idle pass: ms (market ms), reads (getLogs), visits |"
             " pass with 10 % due: ms (market ms), reads, sends, visits |"
             " next pass: ms (market ms), reads, visits, deals closed | sweep: ms, visits |"
             " old per-deal reads (ms) |",
             "|---|---|---|---|---|---|"]
    for n, r in results.items():
        i, d, a, w, o = r["idle"], r["due"], r["after"], r["sweep"], r["old"]
        lines.append(f"| {n} | {i['ms']:.2f} ({i['market_ms']:.2f}), {i['reads']} ({i['logs']}),"
                     f" {i['visits']} | {d['ms']:.0f} ({d['market_ms']:.0f}), {d['reads']},"
                     f" {d['sends']}, {d['visits']} | {a['ms']:.0f} ({a['market_ms']:.0f}),"
                     f" {a['reads']}, {a['visits']}, {a['closed']} | {w['ms']:.1f},"
                     f" {w['visits']} | {o['reads']} ({o['ms']:.0f}) |")
    return "\n".join(lines)


def main() -> None:
    """Measure each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = {}
    with TemporaryDirectory(prefix="gridbid-settle-scale-") as data:
        for n in (int(s) for s in args.sizes.split(",")):
            results[n] = measure(n, Path(data))
            print(f"{n} deals: {results[n]}", file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
