"""Bid-to-browser latency of the portal vs a bare python-socketio broadcast server, and memory.

The portal served as `gridbid run` serves it (web.serve: gunicorn, one threaded worker with
THREADS threads, the app made and the runtime started in the worker after the fork; its
default chain, anvil from npm (embedded py-evm without it), demo boards) and a bare
python-socketio server (threading mode, one HTTP route that broadcasts what it is posted)
under the same gunicorn threaded worker and thread count, each in its own process: alike for
alike. python-socketio clients
(asyncio, spread over two processes) connect to `/market`;
bids are posted at a paced rate through the HTTP API by demo consumers signed in with their own
keys (each bid built from the listing's view and EIP-712-signed by its bidder before its one
POST, as the market page does: no terms request), and every client stamps each
`bid_placed` it receives. Latency = arrival minus the moment the bid's POST was sent
(CLOCK_MONOTONIC, shared by the processes of one machine). Both servers are measured
in the same run with the same client code and rate. Rounds (issue 16): 50 clients at 100
bids/s; 200 clients at 100 bids/s for the bare server alone (a probe: on 2 cores that is
20,000 messages a second, beyond it), then both servers at 200 clients at the rate the bare
server reached in the probe. Then the portal's RSS with 1,000 open auctions, and one more
latency round at 200 clients with those auctions open (at the same rate).
Goals: portal p99 <= 1.5x bare at 50 clients, <= 2x bare at 200 clients (at the bare server's
own rate); RSS <= 300 MB with 1,000 open auctions. Each row also gives its server's CPU per bid
(/proc: every thread of the serving process while the bids were paced, its loops included).
BENCH_CLIENTS=500 adds a round at 500 clients and 100 bids/s. For a diagnosis: BENCH_QUICK=1
runs the two 50-client rounds alone; BENCH_SPY=FILE records the portal worker through each of
its rounds with py-spy (on PATH; collapsed stacks in FILE.<clients>, each led by its thread;
`--gil` unless BENCH_SPY_ARGS says otherwise, e.g. `--idle` to see what threads wait on);
BENCH_DIAG=FILE logs slow collections, loop passes, lock holds and stalls (bench/portal_diag.py);
BENCH_SLOW=N prints the N slowest answers' send times (monotonic, as BENCH_DIAG's lines);
BENCH_PV_W=0 stops alice's PV during the rounds (no mint transactions: at x600 her 400 W mint
10 Wh every ~0.2 s, as ~100 producers would at x1); BENCH_TICK=S sets every loop's period;
BENCH_CHAIN=URI another chain (default `gridbid run`'s: anvil, embedded:// without it).
Run: .venv/bin/python bench/portal.py [--json FILE]
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
SPY = os.environ.get("BENCH_SPY", "")
EXTRA_CLIENTS = tuple(int(n) for n in os.environ.get("BENCH_CLIENTS", "").split(",") if n)
RATE = 100.0  # bids per second
SECONDS = 4.0  # of paced bids per round
LANES = 10  # listings bid on in parallel; each lane posts its bids one after the other
OPEN_AUCTIONS = int(os.environ.get("BENCH_OPEN_AUCTIONS", "1000"))
CLIENT_PROCS = 2
GOAL_RATIO = {50: 1.5, 200: 2.0}  # portal p99 / bare p99 at the same clients and rate
GOAL_RSS_MB = 300.0
TOKENS_WH = OPEN_AUCTIONS + 200  # alice lists 1 Wh per listing
DEMO_PV_PEAK_W = 400
def _default_chain() -> str:
    """`gridbid run`'s default: anvil (npm ci installs it), the embedded py-evm without it."""
    from geth_private.anvil import find_anvil

    return "anvil://" if find_anvil() else "embedded://"


PORTAL_CONFIG = {
    "CHAIN_URI": os.environ.get("BENCH_CHAIN", _default_chain()), "CHAIN_FALLBACK": False,
    "SCRYPT_N": 2**10,
    "SECRET_KEY": "bench", "EMULATOR_SPEED": 600.0, "PV_PEAK_W": 2000, "DEMO_ACCOUNTS": True,
    # 2 kW at 600x is 1.2 MW of chain-time rating, above the default ceiling of 1 MW.
    "MAX_RATED_POWER_W": 2_000_000,
}


# -- the servers (each a child process) ---------------------------------------------------------

THREADS = 250  # the worker's threads, both servers: web.serve's default (WORKER_THREADS)


def _stop_with_parent() -> None:
    """Stop this server (SIGTERM to the arbiter: its worker stops as under `gridbid run`)
    when the bench closes its stdin or dies."""
    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def serve_portal(data_dir: str, port: int) -> None:
    """The real portal on its default chain, served as `gridbid run` serves it (web.serve:
    gunicorn, one threaded worker, the runtime started in it after the fork); prints
    `ready <worker pid>` once alice has tokens to list."""
    from web.serve import serve

    _stop_with_parent()

    def banner(runtime) -> None:
        # In the worker, its runtime up and its port listening: the demo's PV fills alice's
        # tokens on a thread of its own (the worker's own loop must start beating).
        threading.Thread(target=_fill_tokens, args=(runtime,), daemon=True).start()

    overrides = {**PORTAL_CONFIG, "DATA_DIR": data_dir, "WORKER_THREADS": THREADS}
    if os.environ.get("BENCH_TICK"):  # a diagnosis: every loop's period, in seconds
        overrides.update(TICK_S=float(os.environ["BENCH_TICK"]),
                         INTERVAL_TICK_S=float(os.environ["BENCH_TICK"]),
                         EVENT_POLL_S=float(os.environ["BENCH_TICK"]))
    if os.environ.get("BENCH_DIAG"):  # installed before the fork: the worker inherits it
        import portal_diag  # bench/ is the script's directory, first on sys.path

        portal_diag.install(os.environ["BENCH_DIAG"])
    sys.exit(serve(overrides, "127.0.0.1", port, banner))


def _fill_tokens(runtime) -> None:
    """Charge alice's battery until she holds TOKENS_WH tokens, then say `ready <pid>`."""
    # An empty battery has room for the PV to charge every Wh the bench lists.
    runtime.microgrid.set_battery("pv-alice", 0.0)
    alice = next(a["address"] for a in runtime.demo_accounts if a["name"] == "alice")
    while runtime.ledger.token_balance(alice) < TOKENS_WH:
        # The 1.2 kWh battery holds less than the bench lists (and the enrollment's first
        # reading only sets the baseline): emptied again whenever nearly full, it keeps
        # charging, and the meter keeps counting what went in.
        if (runtime.microgrid.reading("pv-alice").soc or 0.0) > 0.9:
            runtime.microgrid.set_battery("pv-alice", 0.0)
        time.sleep(0.2)
    # Back to the demo's PV, so that minting runs at its usual pace while bids are measured.
    pv_w = float(os.environ.get("BENCH_PV_W", DEMO_PV_PEAK_W))
    runtime.microgrid.set_battery("pv-alice", 0.5, pv_peak_w=pv_w)
    print(f"ready {os.getpid()}", flush=True)


def serve_bare(port: int, queue_url: str = "") -> None:
    """python-socketio alone (threading mode): POST /bid broadcasts `bid_placed` to every
    /market client; served by the same gunicorn threaded worker as the portal. With a Redis
    queue_url every emit goes through socketio.RedisManager (bench/portal_procs.py's several
    bare processes, as the portal's MESSAGE_QUEUE)."""
    import socketio
    from gunicorn.app.base import BaseApplication

    _stop_with_parent()
    manager = socketio.RedisManager(queue_url) if queue_url else None
    sio = socketio.Server(async_mode="threading", client_manager=manager)
    sio.on("connect", lambda sid, environ, auth=None: True, namespace="/market")

    def http(environ, start_response):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        bid = json.loads(environ["wsgi.input"].read(size))
        sio.emit("bid_placed", {"id": bid["id"], "highest_bid_wei": str(bid["price_wei"])},
                 namespace="/market")
        start_response("201 Created", [("Content-Type", "application/json")])
        return [b"{}"]

    class Bare(BaseApplication):
        def load_config(self) -> None:
            settings = {"bind": [f"127.0.0.1:{port}"], "workers": 1, "worker_class": "gthread",
                        "threads": THREADS, "timeout": 120, "max_requests": 0,
                        "preload_app": False, "control_socket_disable": True, "graceful_timeout": 5,
                        "post_worker_init": lambda worker: print(f"ready {os.getpid()}",
                                                                 flush=True)}
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return socketio.WSGIApp(sio, http)

    Bare().run()


# -- the clients (child processes) --------------------------------------------------------------

def run_clients(url: str, count: int, cookie: str) -> None:
    """count asyncio clients on /market; on a line from stdin, print arrivals as JSON."""
    asyncio.run(_clients(url, count, cookie))


async def _clients(url: str, count: int, cookie: str) -> None:
    import socketio

    arrivals: dict[str, list[float]] = defaultdict(list)

    def on_bid(data: dict) -> None:
        arrivals[f"{data['id']}:{data['highest_bid_wei']}"].append(time.monotonic())

    gate = asyncio.Semaphore(10)
    clients = []

    async def connect() -> None:
        client = socketio.AsyncClient(reconnection=False)
        client.on("bid_placed", on_bid, namespace="/market")
        async with gate:
            await client.connect(url, headers={"Cookie": cookie}, namespaces=["/market"],
                                 transports=["websocket"], wait_timeout=60)
        clients.append(client)

    await asyncio.gather(*(connect() for _ in range(count)))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(json.dumps(arrivals), flush=True)
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


# -- the bench ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A child process of this script, talking by lines on stdin/stdout; stderr to a file."""

    def __init__(self, *args: str, timeout: float = 180.0, script: Path = HERE):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.expect("ready", timeout).split()
        # A server says which process serves (gunicorn's worker, not the arbiter).
        self.pid = int(ready[1]) if len(ready) > 1 else self.proc.pid

    def expect(self, word: str, timeout: float) -> str:
        """The next stdout line that starts with word (others are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-3000:]
                self.stop()
                raise SystemExit(f"child {self.proc.args[2:]} did not say {word!r}:\n{tail}")
            if line.startswith(word):
                return line

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def ask(self, line: str, timeout: float = 120.0) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.expect("{", timeout)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the process in MB."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the child stops when its stdin closes
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Portal:
    """The demo accounts signed in to a portal child with their own keys (gridbid_client)."""

    def __init__(self, url: str, data_dir: str):
        self.url = url
        self.clients = {name: self._login(data_dir, name) for name in ("alice", "bob", "carol")}
        # One approval covers every listing of the bench, so each listing is one POST.
        alice = self.clients["alice"]
        alice.wait_tx(alice.transact("approve", energy_wh=TOKENS_WH)["tx_hash"])

    def _login(self, data_dir: str, name: str):
        from eth_account import Account

        from gridbid_client.client import Client

        address = json.loads((Path(data_dir) / "accounts.json").read_text())[name]
        keyfile = next((Path(data_dir) / "keystore").glob(f"UTC--*--{address[2:].lower()}"))
        key = Account.from_key(Account.decrypt(json.loads(keyfile.read_text()), f"{name}-demo"))
        client = Client(self.url, key)
        client.login()  # Sign-In with Ethereum, signed here
        return client

    def cookie(self, who: str = "alice") -> str:
        cookies = self.clients[who].transport.session.cookies
        return "; ".join(f"{k}={v}" for k, v in cookies.items())

    def deposit(self, who: str, eth: str) -> None:
        client = self.clients[who]
        client.deposit(eth)
        while int(client.wallet()["escrow_free_wei"]) < 1:
            time.sleep(0.1)

    def listing(self) -> dict:
        # A listing is alice's signed offer (the allowance approved up front covers it).
        return self.clients["alice"].create_listing(1, 1000, 3600)


def paced_bids(post, lanes: list, rate: float, seconds: float) -> dict[str, tuple[float, float]]:
    """Bids at `rate`, round robin over lanes, each lane one POST after the other.
    post(lane, i) -> (the key its broadcast carries, when its POST was sent); returns
    key -> (sent, answered)."""
    total = int(rate * seconds)
    sent: dict[str, tuple[float, float]] = {}
    start = time.monotonic() + 0.2

    def lane_worker(k: int) -> None:
        for i in range(k, total, len(lanes)):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            key, at = post(lanes[k], i)
            sent[key] = (at, time.monotonic())

    workers = [threading.Thread(target=lane_worker, args=(k,)) for k in range(len(lanes))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sent


def portal_poster(portal: Portal):
    """post(lane, i) for the portal: bob and carol take turns, each bid the lowest accepted,
    built from the listing's view and signed by the bidder (EIP-712) before the timed POST,
    as a page does: one POST per bid, its answer the view the lane's next bid is built from."""
    from eth_account import Account

    from gridbid_client import bids

    domain = bids.chain_domain(portal.clients["bob"].chain())
    meters = {name: portal.clients[name].me()["meter"] for name in ("bob", "carol")}
    views: dict[int, dict] = {}

    def post(listing: dict, i: int) -> tuple[str, float]:
        lid = listing["id"]
        view = views.get(lid, listing)
        price = int(view["min_next_bid_wei"])
        name = ("bob", "carol")[(i // LANES) % 2]
        client = portal.clients[name]
        typed = bids.build_bid(view, price, client.account.address, meters[name], domain)
        signature = Account.sign_typed_data(client.account.key, full_message=typed).signature
        at = time.monotonic()
        views[lid] = client.post(f"/api/listings/{lid}/bids",
                                 {"bid": bids.as_json(typed["message"]),
                                  "signature": "0x" + bytes(signature).hex()})
        return f"{lid}:{price}", at

    return post


def bare_poster(url: str):
    import requests

    session = requests.Session()
    prices: dict[int, int] = defaultdict(lambda: 1000)

    def post(lane: int, i: int) -> tuple[str, float]:
        prices[lane] += 11
        at = time.monotonic()
        session.post(f"{url}/bid", json={"id": lane, "price_wei": prices[lane]}).raise_for_status()
        return f"{lane}:{prices[lane]}", at

    return post


def cpu_s(pid: int | Sequence[int]) -> float:
    """CPU seconds (user + system) a process has used, all its threads (summed over several
    processes; one that has gone counts nothing)."""
    total = 0
    for one in [pid] if isinstance(pid, int) else pid:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(url: str, count: int, cookie: str, post, lanes: list, rate: float = RATE,
            pid: int | Sequence[int] | None = None, others: Sequence[int] = ()) -> dict:
    """One round: count clients connect, paced bids at rate, every arrival stamped; with the
    server's pid (or pids), its CPU per bid while the bids are paced (its loops' share
    included), and likewise the CPU of others (bench/portal_procs.py: Redis, nginx, ...)."""
    per = [count // CLIENT_PROCS + (1 if k < count % CLIENT_PROCS else 0)
           for k in range(CLIENT_PROCS)]
    begin = time.monotonic()
    swarm = [Child("clients", url, str(n), cookie, timeout=300) for n in per if n]
    connect_s = time.monotonic() - begin
    try:
        cpu_before, others_before = (cpu_s(pid) if pid else 0.0), cpu_s(others)
        sent = paced_bids(post, lanes, rate, SECONDS)
        time.sleep(1.0)  # stragglers
        cpu_ms = (cpu_s(pid) - cpu_before) * 1000 if pid else float("nan")
        others_ms = (cpu_s(others) - others_before) * 1000
        arrivals: dict[str, list[float]] = defaultdict(list)
        for child in swarm:
            for key, times in json.loads(child.ask("dump")).items():
                arrivals[key].extend(times)
    finally:
        for child in swarm:
            child.stop()
    latencies = sorted((t - sent[key][0]) * 1000 for key, times in arrivals.items()
                       if key in sent for t in times)
    answers = sorted((done - at) * 1000 for at, done in sent.values())
    if os.environ.get("BENCH_SLOW"):  # the slowest answers, at their monotonic send times
        slow = sorted(sent.values(), key=lambda s: s[0] - s[1])[:int(os.environ["BENCH_SLOW"])]
        print("slowest answers:", ", ".join(f"{at:.3f}+{(done - at) * 1000:.0f}ms"
                                             for at, done in sorted(slow)), flush=True)
    expected = len(sent) * count
    return {"clients": count, "offered": rate, "bids": len(sent), "connect_s": connect_s,
            "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "post_p50": pct(answers, 50), "post_p99": pct(answers, 99),
            "lost": expected - len(latencies), "expected": expected,
            "cpu_ms_per_bid": cpu_ms / max(1, len(sent)),
            "others_cpu_ms_per_bid": others_ms / max(1, len(sent)),
            "rate": len(sent) / (max(at for at, _ in sent.values())
                                 - min(at for at, _ in sent.values()) or 1)}


def spy_on(pid: int, out: str) -> subprocess.Popen:
    """py-spy recording pid's threads into out (collapsed stacks, each led by its thread): those
    holding the GIL unless BENCH_SPY_ARGS says otherwise."""
    how = os.environ.get("BENCH_SPY_ARGS", "--gil").split()
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), *how, "--threads",
                             "--rate", "250", "--format", "raw", "--output", out,
                             "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main() -> None:
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    rows, memory = [], {}
    with tempfile.TemporaryDirectory(prefix="gridbid-bench-") as data:
        portal_port, bare_port = free_port(), free_port()
        started = time.monotonic()
        portal_proc = Child("serve-portal", data, str(portal_port), timeout=300)
        bare = Child("serve-bare", str(bare_port))
        try:
            memory["started"] = portal_proc.rss_mb()[0]
            portal_url, bare_url = f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{bare_port}"
            portal = Portal(portal_url, data)
            print(f"portal up in {time.monotonic() - started:.0f} s", file=sys.stderr)
            portal.deposit("bob", "40")
            portal.deposit("carol", "40")
            cookie = portal.cookie()

            def round_of(name: str, count: int, rate: float, probe: bool = False) -> dict:
                if name == "bare":
                    row = measure(bare_url, count, "", bare_poster(bare_url),
                                  list(range(LANES)), rate, bare.pid)
                else:
                    lanes = [portal.listing() for _ in range(LANES)]
                    spy = spy_on(portal_proc.pid, f"{SPY}.{count}") if SPY else None
                    row = measure(portal_url, count, cookie, portal_poster(portal), lanes, rate,
                                  portal_proc.pid)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=60)
                row = {"server": name, "open": LANES if name == "portal" else 0,
                       "probe": probe, **row}
                rows.append(row)
                print(f"{name} {count} at {rate:.0f}/s: {row}", file=sys.stderr)
                return row

            round_of("bare", 50, RATE)
            round_of("portal", 50, RATE)
            if QUICK:
                print(report({"rows": rows, "memory": {}, "rate": RATE, "seconds": SECONDS}))
                return
            reached = round_of("bare", 200, RATE, probe=True)["rate"]
            bare_rate = float(min(RATE, max(10, int(reached))))
            round_of("bare", 200, bare_rate)
            round_of("portal", 200, bare_rate)
            for count in EXTRA_CLIENTS:
                round_of("bare", count, RATE)
                round_of("portal", count, RATE)
            memory["after rounds"] = portal_proc.rss_mb()[0]
            begin = time.monotonic()
            # At least one round's lanes, when BENCH_OPEN_AUCTIONS is no more than the rounds
            # before opened (e.g. 30): the last round then bids on these.
            lanes = [portal.listing() for _ in range(max(LANES, OPEN_AUCTIONS - 3 * LANES))]
            memory["list_per_s"] = len(lanes) / (time.monotonic() - begin)
            memory["open auctions"] = OPEN_AUCTIONS
            memory[f"{OPEN_AUCTIONS} open"] = portal_proc.rss_mb()[0]
            row = measure(portal_url, 200, cookie, portal_poster(portal), lanes[:LANES],
                          bare_rate, portal_proc.pid)
            rows.append({"server": "portal", "open": OPEN_AUCTIONS, "probe": False, **row})
            print(f"portal 200 with {OPEN_AUCTIONS} open: {row}", file=sys.stderr)
            memory[f"{OPEN_AUCTIONS} open, after 200 clients"], memory["peak"] = \
                portal_proc.rss_mb()
        finally:
            bare.stop()
            portal_proc.stop()
    result = {"rows": rows, "memory": memory, "rate": RATE, "seconds": SECONDS}
    print(report(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=1))


def report(result: dict) -> str:
    """The figures as the text block docs/BENCHMARKS.md shows."""
    goals = ", ".join(f"p99 <= {r}x bare at {c}" for c, r in GOAL_RATIO.items())
    lines = [f"bid -> bid_placed at every client, paced bids for {result['seconds']:.0f} s, "
             f"clients on /market over loopback (goals: {goals})",
             f"{'server':<8}{'open':>6}{'clients':>8}{'asked/s':>8}{'bids/s':>8}{'p50 ms':>9}"
             f"{'p99 ms':>9}{'x bare p50':>11}{'x bare p99':>11}{'POST p50':>10}{'lost':>8}"
             f"{'connect s':>11}{'CPU ms/bid':>11}{'goal':>6}"]
    # Each portal row against the bare row of the same clients and asked rate.
    bare = {(r["clients"], r["offered"]): r for r in result["rows"]
            if r["server"] == "bare" and not r.get("probe")}
    for r in result["rows"]:
        base = bare.get((r["clients"], r["offered"])) if r["server"] != "bare" else None
        ratio50 = f"{r['p50'] / base['p50']:.2f}" if base else ""
        ratio99 = f"{r['p99'] / base['p99']:.2f}" if base else ""
        goal = GOAL_RATIO.get(r["clients"]) if base and r["open"] <= LANES else None
        # The goal holds only at the asked rate: a server that answers slowly is sent fewer bids
        # (each lane waits for its answer), and fewer broadcasts queue less.
        kept = r["rate"] >= 0.9 * r["offered"]
        verdict = "" if goal is None else (
            "ok" if r["p99"] <= goal * base["p99"] and kept else "MISS")
        name = r["server"] + (" *" if r.get("probe") else "")
        lines.append(f"{name:<8}{r['open']:>6}{r['clients']:>8}{r['offered']:>8.0f}"
                     f"{r['rate']:>8.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{ratio50:>11}"
                     f"{ratio99:>11}{r['post_p50']:>10.1f}{r['lost']:>8}"
                     f"{r['connect_s']:>11.1f}{r.get('cpu_ms_per_bid', float('nan')):>11.2f}"
                     f"{verdict:>6}".rstrip())
    lines.append("* the probe: the bare server asked 100 bids/s at 200 clients; what it reached "
                 "is the rate of the 200-client rounds")
    lines.append("CPU ms/bid: the server process's CPU (all threads, its loops included) while "
                 "the bids were paced, per bid")
    m = result["memory"]
    if not m:  # BENCH_QUICK: the latency rounds alone
        return "\n".join(lines)
    lines += ["", f"portal RSS (goal <= {GOAL_RSS_MB:.0f} MB with {OPEN_AUCTIONS} open auctions)"]
    for key, value in m.items():
        if key in ("list_per_s", "open auctions"):
            continue
        lines.append(f"{key:<40}{value:>8.0f} MB")
    lines.append(f"listings created through POST /api/listings: {m['list_per_s']:.0f}/s")
    return "\n".join(lines)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve-portal":
        serve_portal(sys.argv[2], int(sys.argv[3]))
    elif command == "serve-bare":
        serve_bare(int(sys.argv[2]))
    elif command == "clients":
        run_clients(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
