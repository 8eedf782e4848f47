"""Run every benchmark and rewrite docs/BENCHMARKS.md from what they print (`make bench`).

Each bench prints its figures as a text block; this script runs them one after the other
(never two at once: they would share the cores), echoes their output, and writes the document:
the machine and date on top, then per bench its block framed by prose that explains how to
read it. Run: .venv/bin/python bench/report.py [gas chain ...] (default: all)
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"

HEADER = """# Benchmarks

Figures printed by the scripts in `bench/`, measured in one run each by `make bench` (which
rewrites this file) on the machine named below. Gas is deterministic for a given compiler and
inputs; timings are not (the machines are shared), so compare ratios taken in one run.

Machine: {machine}. Measured {date}, Python {python}; the whole run took {minutes:.1f} min.
"""

SECTIONS = [
    ("gas", "Contract gas", """\
py-evm through eth-tester, solc-js with the optimizer (200 runs), `evmVersion` prague. The last
table is the community market's interval settlement over a steady-state day, settled per
interval, hourly, daily and per kWh, gas per delivered kWh by kind (setup reported apart).""", """\
Reading the figures:
- The escrow's balances per market cost little: a first deposit ~48 k (a fresh slot), later
  ones ~31 k; asking for a withdrawal ~52 k (it writes the request's one slot), completing it
  after the notice ~39 k (the Ether goes out, the slot is cleared). The immediate `withdraw`
  these replaced (issue 13) cost ~38 k. `openDeal` is unchanged (it reads the LOTS market's
  balance where it read the one balance); the escrow's deploy grew from 2.19 M to 2.66 M.
- One delivery step costs ~88 k gas after the first (~122 k: cold storage). It reads the
  meter registry, updates the deal, pays the seller by a push with bounded gas and burns the
  delivered tokens. The naive scheme's step — a bare report transaction plus a plain Ether
  transfer — costs ~49 k, so the escrow's guarantees (binding bid, locked funds and tokens,
  exact cumulative payment, refunds) cost 1.8–1.9× per step at 1 and 10 Wh steps.
- At 100 Wh steps the escrow's fixed costs (the signed-bid `openDeal`, ~334 k) dominate a
  1 kWh deal: 1.23 M gas per kWh, 2.5× the naive scheme at the same granularity. Larger deals
  amortise it.
- The naive scheme's own granularity is one step per kWh (49 k gas per kWh), which trusts the
  seller to deliver and the buyer to pay; the escrow at the portal's default 5 Wh step costs
  ~200 reports per kWh (~18 M gas).

- The community market (`bench/gas_intervals.py`, the last table): 10 sellers and 30 buyers
  trade 144 kWh over a day's 96 intervals. Settling everyone every interval costs ~1.34 M gas
  per delivered kWh (96 transactions, 3,840 positions), hourly ~0.34 M; per kWh (a position
  once it reaches 1,000 Wh, everyone at the day's end) ~74 k — under the 100 k goal — and
  daily ~17 k. A position costs ~54 k gas (one reading's ecrecover, the account's one slot,
  the escrow's charge or credit, a seller's netted mint and burn, the event); the order's
  signature is checked once, on the first position. Those figures count each participant's
  first settlement (3.9 M gas for the 40) as setup; issue 15 counts only deploy, enrollment,
  funding and deposits, and with the first settlements in the day per kWh is ~101 k — just
  over the goal — (daily ~45 k); the table's "with first" rows print it.

(The figures above are quoted from the tables; they change only with the contracts or the
compiler, and then the tables show the new ones.)"""),
    ("chain", "Transaction layer throughput", """\
200 transactions sent and awaited one after another through `geth_private.TxManager`
(per-account nonce lock, records, receipt tracking, journal hooks) and as bare web3
(`send_raw_transaction` + `wait_for_transaction_receipt` with 5 ms polling), alternating in 8
rounds so machine drift hits both alike. Goal ≥ 0.8×.""", """\
Runs on 2026-11-21 gave ratios of 0.87–0.91 (embedded transfers), 0.94–1.02 (embedded
reports), 0.96–1.07 (anvil transfers) and 0.99–1.39 (anvil reports). The first measurement,
before profiling, was 0.52 for anvil transfers: each send fetched the latest block for the base
fee and each wait fetched the receipt twice more. The base fee is now refreshed at most once a
second and the receipt found at send time is kept on the record."""),
    ("chain_calls", "One node call's CPU", """\
`bench/chain_calls.py`: the portal process's CPU for one JSON-RPC call to anvil, through web3's
default HTTP provider and through `geth_private.provider.NodeProvider`, whose session reads the
environment's proxies once (requests' default looks up the proxies and `~/.netrc` at every
call). The portal's loops and requests make dozens of calls a second under one GIL.""", None),
    ("boards", "Serial round trips", """\
2,000 requests each through `firmware_bridge.client.BoardClient` over a pseudo-terminal, to
the Python board emulator (in the bench process) and to the C reference firmware built for the
host (`firmware_bridge/firmware`, a separate process). Goal: p99 ≤ 10 ms. The last line is
the time from an auction's deadline passing to both boards reporting their relay closed, on
the embedded chain with the portal's own loops.""", """\
A run on a busier machine (another job on the second core) had p99 up to 1.8 ms and single
maxima around 20 ms, scheduling noise; the median stayed near 0.1–0.2 ms. The deadline to
relays time is almost all the market's tick (`TICK_S`): the auction is closed at the first tick
after its deadline; the two RELAY round trips add ~0.2 ms. `bench/settle.py` splits it by
stage."""),
    ("portal", "Portal: bid to every browser, and memory", """\
`bench/portal.py` serves the portal as `gridbid run` does (`web.serve`: gunicorn, one threaded
worker with 250 threads, the app made and the runtime started in the worker after the fork; its
default chain, anvil from npm; the demo's three emulated boards attached in the portal process
so the bench can charge alice's battery, whose PV then mints 10 Wh every ~0.2 s at x600, as ~100
producers would in real time) and a bare python-socketio broadcast server (threading mode, one
HTTP route that emits what it is posted) under the same gunicorn threaded worker and thread
count, each in its own process: alike for alike. Clients are python-socketio asyncio clients on
loopback, spread over two processes, connected to `/market`; bids are posted at a paced rate
through the HTTP API by the logged-in demo consumers (10 listings bid on in parallel, each
listing's bids one after the other, as bidders race on a card; each bid built from the listing's
view and signed by its bidder in the bench process, then posted once, as the market page does),
and the bare server is posted the same way. Rounds: 50 clients at 100 bids/s; a probe of the
bare server alone at 200 clients and 100 bids/s (`bare *`); then both at 200 clients at the rate
the bare server reached in the probe (`asked/s`). Latency is from the moment a bid's POST is
sent to its `bid_placed` arriving at each client; `POST p50` is the HTTP answer's own time;
`lost` counts arrivals that never came (expected = bids × clients). `bids/s` is the rate the
bidders achieved: a lane waits for its answer before its next bid, so a slow server is sent
fewer bids, and a row that fell below 90% of the asked rate misses its goal whatever its p99.
The last portal row repeats 200 clients with 1,000 auctions open (every client's connect
snapshot carries them all). Goals: p99 ≤ 1.5× the bare server at 50 clients, ≤ 2× at 200 clients
(at the bare server's own rate); RSS ≤ 300 MB with 1,000 open auctions. `CPU ms/bid` is the
serving process's CPU (user + system, every thread, its loops included, from `/proc`) while the
bids were paced, divided by the bids.""", None),
    ("portal_procs", "Portal as deployed: several processes", """\
`bench/portal_procs.py` measures what `bench/portal.py` measures (its clients, bidders, pacing and
goals, imported) for the portal as docs/DEPLOY.md deploys it: N portal processes (`web.serve`,
one threaded worker of 250 threads each) on one anvil node, one PostgreSQL store, the signed
Redis message queue and one data directory, the demo's boards in the one local bridge child,
behind nginx (`deploy/nginx/gridbid-proxy.conf`; the upstream hashes the client's address and
port, since `ip_hash` sends every 127.0.0.1 client to one process); against N bare
python-socketio processes on `socketio.RedisManager` behind the same nginx (`x bareN`, alike for
alike) and `bench/portal.py`'s one bare process with neither (`bare direct`, the issue's
reference: `x bare1`). Clients are websocket-only (no stickiness needed), spread over the
processes by nginx, as are the bidders' connections. `CPU ms/bid` sums the serving processes'
workers; `others` is what serves them (Redis, nginx, PostgreSQL, anvil, the arbiters, the local
bridge). Goals as bench/portal.py's, against the bare direct row.""", None),
    ("settle", "Settlement: auction close to relays on", """\
`bench/settle.py` runs the portal's runtime in the bench process with the default market tick;
a hand-driven clock moves each auction past its deadline and the bench stamps each stage: the
market closes the auction (`listing_closed`), sends `openDeal` (pending), the receipt arrives
(mined), the deal is published active (after its relays switched), and both boards report
their relay closed. Goal: relays on within 1 s, on anvil and on the embedded chain.""", """\
The auction waits on average half a tick (up to one) to be closed: that is most of the time.
`openDeal` is sent in the same tick, mined at once on either chain (automine), and the relays
are switched as soon as the market sees the receipt, within a few ms."""),
    ("login", "Login in the browser at the default scrypt cost", """\
`bench/login.py` serves the portal with keystores at geth's default scrypt cost (N = 2**18)
and logs in through the page in Chromium: the page downloads the keystore, unlocks it itself
(ethers' scrypt in JavaScript, with progress shown) and signs the portal's Sign-In with
Ethereum message; the passphrase and key never leave it. Unlock is the click to 100 %, the
whole login ends when the portal has opened the session.""", None),
    ("bid", "A bid's round trip, signed by its bidder", """\
`bench/bid.py` serves the portal (embedded chain) over HTTP and times bob's bids from the
bidder's side: the Python client asks for the EIP-712 terms, signs them and posts the
signature (two requests); the page builds the terms from the listing and posts once. Before
the signed API (0b1cb99) the portal signed with the key it held, in one POST: 4.0 ms median
on this machine in the run that measured the figures below (`bench/bid.py` on that commit).""",
     None),
    ("town", "A town on one machine", """\
`bench/town.py` runs `gridbid simulate` (anvil, interval market, a quarter producers) at 25, 50,
100 and 200 meters over the same sunny hour (10:00) at ×300, each in its own process, and reads
each run's load figures (simulation/load.py): pace (emulated seconds per wall second while
trading), clearing (clock on the boundary to the interval published), the market's tick pass,
settlement lag p99 (bought Wh metered but not settled on chain), portal and anvil RSS, CPU
cores used, open descriptors, threads, gas per block, and the resource at its limit. The last
block is a full day, `gridbid simulate --producers 50 --consumers 150 --hours 24 --chain
anvil://`, read from its report directory (`bench/town.py --day DIR`; set TOWN_DAY).""",
     None),
]

NOTES_FILE = HERE / "notes"  # hand-written notes per bench (before/after of fixes), if any


def machine() -> str:
    """CPU model, cores and RAM of this machine."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    ram_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return f"{model}, {os.cpu_count()} cores, {ram_kb / 1024 / 1024:.1f} GB RAM"


def run(name: str) -> str:
    """A bench's printed output (echoed as it comes); its errors go to the terminal."""
    print(f"== bench/{name}.py", flush=True)
    extra = ["--day", os.environ["TOWN_DAY"]] if name == "town" and "TOWN_DAY" in os.environ \
        else []
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"bench/{name}.py failed (exit {proc.returncode}); "
                         "docs/BENCHMARKS.md is unchanged")
    return "".join(lines).rstrip()


def section(name: str, title: str, intro: str, after: str | None, output: str) -> str:
    """One bench's section of the document: intro, its printed block, notes."""
    parts = [f"## {title} — `bench/{name}.py`\n\n{intro}\n\n```\n{output}\n```\n"]
    note = NOTES_FILE / f"{name}.md"
    if after:
        parts.append(after + "\n")
    if note.exists():
        parts.append(note.read_text().rstrip() + "\n")
    return "\n".join(parts)


def splice(text: str, name: str, new: str) -> str:
    """text with bench name's section replaced by new (appended when it has none yet)."""
    marker = f" — `bench/{name}.py`"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if line.startswith("## ") and line.rstrip().endswith(marker)), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + new
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return "".join(lines[:start]) + new + ("\n" if end < len(lines) else "") + \
        "".join(lines[end:])


def main() -> None:
    chosen = sys.argv[1:] or [name for name, *_ in SECTIONS]
    started = time.monotonic()
    outputs = {name: run(name) for name in chosen}
    if set(chosen) != {name for name, *_ in SECTIONS}:
        # A partial run replaces only its own sections; the header's date is the full run's.
        text = DOC.read_text()
        for name, title, intro, after in SECTIONS:
            if name in outputs:
                text = splice(text, name, section(name, title, intro, after, outputs[name]))
        DOC.write_text(text)
        print(f"(a partial run: replaced {', '.join(chosen)} in {DOC.relative_to(ROOT)})")
        return
    parts = [HEADER.format(
        machine=machine(), date=datetime.date.today().isoformat(),
        python=platform.python_version(), minutes=(time.monotonic() - started) / 60)]
    for name, title, intro, after in SECTIONS:
        parts.append(section(name, title, intro, after, outputs[name]))
    DOC.write_text("\n".join(parts))
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
