"""Bid-to-browser latency of the portal as deployed: N portal processes behind nginx, vs N bare
python-socketio processes on a Redis manager, and vs the one bare process of bench/portal.py.

The portal as docs/DEPLOY.md deploys it: N `web.serve` processes (gunicorn, one threaded worker
each, THREADS threads), sharing one anvil node, one PostgreSQL store, one Redis message queue
(signed, web/signed_queue.py: the same SECRET_KEY in every process) and one data directory
(keystores, contracts' address book, the local bridge's token); the demo's boards run in the one
local bridge child (web/runtime/local_bridge.py) of the process holding its lease. nginx (with
deploy/nginx/gridbid-proxy.conf) is in front; its upstream hashes the client's address *and
port* (`hash $remote_addr$remote_port consistent`): `ip_hash` keys IPv4 clients on their first
three octets, so every 127.0.0.1 client would reach one process. The clients are websocket-only
(no long-polling: they need no stickiness), and each keeps its connection, so they and the
bidders' keep-alive connections are spread over the processes. The bare server likewise: N
processes of bench/portal.py's `serve_bare` on `socketio.RedisManager`, behind the same nginx
conf; and bench/portal.py's single bare process, no Redis, no nginx: the issue's reference.
Everything else (clients, pacing, bidders, latency, the goals) is bench/portal.py's, imported.

Alice's tokens: her PV board in the bridge child, at bench/portal.py's PV_PEAK_W and x600 speed,
fills its half-empty battery (~600 Wh metered) within seconds, and the settling process mints
it; the bench waits for TOKENS_NEEDED, the 1 Wh listings its rounds use (no 1,000-auction round
here: that is bench/portal.py's memory figure, one process).
CPU ms/bid: the serving processes' workers summed (`servers`), and apart (`others`) what serves
them: Redis, nginx, PostgreSQL's server processes, anvil, the gunicorn arbiters and the local
bridge child. Run: .venv/bin/python bench/portal_procs.py [--json FILE]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

import portal as base  # noqa: E402 - bench/portal.py, found beside this script

PROCS = tuple(int(n) for n in os.environ.get("BENCH_PROCS", "1,2").split(","))
CLIENTS = (50, 200)
LANES = base.LANES
TOKENS_NEEDED = LANES * len(PROCS) * len(CLIENTS) + 5
# postgresql (what docs/DEPLOY.md deploys) or sqlite (the shared data directory's file)
STORE = os.environ.get("BENCH_STORE", "postgresql")
IDLE_S = 3.0  # of CPU measured with no clients and no bids, per process count
PROXY = ROOT / "deploy" / "nginx" / "gridbid-proxy.conf"


# -- the servers (children of this script) ------------------------------------------------------

def serve_portal(data_dir: str, port: int, chain: str, store: str, queue: str) -> None:
    """One portal process as deployed (web.serve on a shared chain, store, queue and data
    directory); prints `ready <worker pid>` once its runtime is up."""
    from web.serve import serve

    base._stop_with_parent()
    overrides = {**base.PORTAL_CONFIG, "CHAIN_URI": chain, "STORE_URL": store,
                 "MESSAGE_QUEUE": queue, "DATA_DIR": data_dir, "WORKER_THREADS": base.THREADS,
                 "LOCAL_BRIDGE_PORTAL": f"http://127.0.0.1:{port}", "PROXY_HOPS": 1}
    sys.exit(serve(overrides, "127.0.0.1", port,
                   lambda runtime: print(f"ready {os.getpid()}", flush=True)))


def upstream(ports: list[int]) -> str:
    """nginx's http block: the deploy's proxy locations behind a hashed upstream of ports."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;"
                        for p in ports)
    return f"""
    upstream gridbid {{
        hash $remote_addr$remote_port consistent;
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:PORT;
        add_header X-Upstream $upstream_addr always;
        include {PROXY};
    }}"""


def nginx(root: Path, http: str):
    """tests/services.py's nginx (the test suite's, on loopback), with Debian's worker count
    and room for every client's connection twice (client side and upstream side)."""
    from tests.services import NginxServer

    class Nginx(NginxServer):
        def write(self, http: str) -> None:
            super().write(http)
            text = self.conf.read_text().replace("worker_processes 1;", "worker_processes auto;")
            self.conf.write_text(text.replace("worker_connections 256;",
                                              "worker_connections 4096;"))

    return Nginx(root, http)


def descendants(root: int) -> list[int]:
    """root and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class Town:
    """Everything the portal processes share, and the processes, started in order; close()
    (an ExitStack) stops every one of them, whatever failed."""

    def __init__(self, stack: contextlib.ExitStack, data: str):
        from geth_private import backend_from_uri
        from simulation.chaos.services import PostgresServer, RedisServer

        self.stack, self.data = stack, data
        self.redis = RedisServer()
        stack.callback(self.redis.stop)
        self.postgres = None if STORE == "sqlite" else PostgresServer()
        if self.postgres is not None:
            stack.callback(self.postgres.stop)
        # Empty: the SQLite file in the shared data directory (BENCH_STORE=sqlite).
        self.store_url = self.postgres.new_database() if self.postgres is not None else ""
        self.chain = backend_from_uri("anvil://", str(Path(data) / "chain"))
        self.chain.start()
        stack.callback(self.chain.stop)
        self.chain_url = f"http://127.0.0.1:{self.chain.port}"
        self.portals: list[base.Child] = []
        self.bares: list[base.Child] = []
        self.nginx: dict[str, object] = {}  # one per kind, reloaded as processes are added

    def start(self, kind: str, count: int) -> None:
        """Have `count` processes of kind (portal, bare) running, and an nginx in front."""
        started = self.portals if kind == "portal" else self.bares
        while len(started) < count:
            port = base.free_port()
            args = (["serve-portal", self.data, str(port), self.chain_url, self.store_url,
                     self.redis.url] if kind == "portal"
                    else ["serve-bare", str(port), self.redis.url])
            child = base.Child(*args, timeout=300, script=HERE)
            child.port = port
            self.stack.callback(child.stop)
            started.append(child)
        http = upstream([c.port for c in started[:count]])
        if kind in self.nginx:
            self.nginx[kind].reload(http)  # as an operator adds a process: SIGHUP
        else:
            root = Path(self.data) / f"nginx-{kind}"
            root.mkdir()
            self.nginx[kind] = nginx(root, http)
            self.stack.callback(self.nginx[kind].stop)
        self._spread(kind, {f"127.0.0.1:{c.port}" for c in started[:count]})

    def _spread(self, kind: str, ports: set[str], timeout: float = 30.0) -> None:
        """Until fresh connections through nginx have reached every one of ports (and no
        other): the reload taken, the hash spreading connections by their port."""
        import requests

        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while seen != ports:
            if time.monotonic() > deadline:
                raise SystemExit(f"nginx ({kind}) reached {sorted(seen)}, not {sorted(ports)}")
            with requests.Session() as fresh:  # a new connection, a new source port
                answer = fresh.get(f"{self.url(kind)}/socket.io/?EIO=4&transport=polling",
                                   timeout=10)
            upstream_addr = answer.headers.get("X-Upstream", "").split(",")[-1].strip()
            seen = seen | {upstream_addr} if upstream_addr in ports else set()

    def url(self, kind: str) -> str:
        """nginx's URL in front of the processes of kind."""
        return self.nginx[kind].url

    def parts(self, kind: str, count: int) -> dict[str, list[int]]:
        """The pids serving the servers of one row (not the workers themselves), by part."""
        servers = self.portals if kind == "portal" else self.bares
        parts = {"redis": descendants(self.redis.pid()),
                 "nginx": descendants(self.nginx[kind].process.pid),
                 # gunicorn's arbiters, and the local bridge child of the one holding its lease
                 "arbiters": [p for c in servers[:count] for p in descendants(c.proc.pid)
                              if p != c.pid]}
        if kind == "portal":
            if self.postgres is not None:
                parts["postgres"] = descendants(self.postgres.pid())
            parts["anvil"] = descendants(int(self.chain.pid_path.read_text().split()[0]))
        return parts

    def others(self, kind: str, count: int) -> list[int]:
        """Every pid of parts(), in one list."""
        return [pid for pids in self.parts(kind, count).values() for pid in pids]


def wait_for_tokens(portal: base.Portal, wh: int, timeout: float = 120.0) -> None:
    """Until alice holds wh energy tokens (minted from her PV board's readings)."""
    deadline = time.monotonic() + timeout
    while (held := int(portal.clients["alice"].wallet()["tokens_wh"])) < wh:
        if time.monotonic() > deadline:
            raise SystemExit(f"alice holds {held} Wh of tokens after {timeout:.0f} s, the "
                             f"bench lists {wh}")
        time.sleep(0.5)


# -- the bench ------------------------------------------------------------------------------

def idle_cores(town: Town, procs: int) -> dict[str, list[float]]:
    """Cores each kind's servers and others use with no clients and no bids (their loops)."""
    groups = {kind: ([c.pid for c in (town.portals if kind == "portal" else town.bares)[:procs]],
                     town.others(kind, procs)) for kind in ("portal", "bare")}
    before = {kind: [base.cpu_s(g) for g in group] for kind, group in groups.items()}
    time.sleep(IDLE_S)
    return {kind: [(base.cpu_s(g) - b) / IDLE_S
                   for g, b in zip(group, before[kind], strict=True)]
            for kind, group in groups.items()}


def rounds(town: Town, portal: base.Portal, bare_direct: base.Child, result: dict,
           procs: int, rate_200: float | None) -> float | None:
    """The rounds of one process count: bare (direct, once), bare xN and portal xN at 50
    clients and 100 bids/s, then at 200 clients at the rate the direct bare server reached
    (probed at the first count). Returns that rate."""
    cookie = portal.cookie()
    result["idle"][procs] = idle_cores(town, procs)

    def one(name: str, count: int, rate: float, probe: bool = False) -> dict:
        if name == "bare direct":
            url = f"http://127.0.0.1:{bare_direct.port}"
            row = base.measure(url, count, "", base.bare_poster(url), list(range(LANES)), rate,
                               bare_direct.pid, [p for p in descendants(bare_direct.proc.pid)
                                                 if p != bare_direct.pid])
        elif name == "bare":
            url = town.url("bare")
            row = base.measure(url, count, "", base.bare_poster(url), list(range(LANES)), rate,
                               [c.pid for c in town.bares[:procs]], town.others("bare", procs))
        else:
            lanes = [portal.listing() for _ in range(LANES)]
            parts = town.parts("portal", procs)
            before = {part: base.cpu_s(pids) for part, pids in parts.items()}
            row = base.measure(town.url("portal"), count, cookie,
                               base.portal_poster(portal), lanes, rate,
                               [c.pid for c in town.portals[:procs]],
                               town.others("portal", procs))
            # By part over the whole round (connects and dump included: coarser than `others`).
            row["parts_ms_per_bid"] = {
                part: (base.cpu_s(pids) - before[part]) * 1000 / max(1, row["bids"])
                for part, pids in parts.items()}
        row = {"server": name, "procs": 1 if name == "bare direct" else procs,
               "probe": probe, "load": os.getloadavg()[0], **row}
        result["rows"].append(row)
        print(f"{name} x{row['procs']} {count} at {rate:.0f}/s: {row}", file=sys.stderr)
        return row

    for count in CLIENTS:
        if count == 200 and rate_200 is None:
            reached = one("bare direct", 200, base.RATE, probe=True)["rate"]
            rate_200 = float(min(base.RATE, max(10, int(reached))))
        rate = base.RATE if count == 50 else rate_200
        if procs == PROCS[0]:
            one("bare direct", count, rate)
        one("bare", count, rate)
        one("portal", count, rate)
    return rate_200


def bench(stack: contextlib.ExitStack, data: str) -> dict:
    """Start the town, run the rounds for each process count; the figures."""
    started = time.monotonic()
    load_before = os.getloadavg()
    town = Town(stack, data)
    bare_direct = base.Child("serve-bare", str(port := base.free_port()))
    bare_direct.port = port
    stack.callback(bare_direct.stop)
    result: dict = {"rows": [], "idle": {}, "store": STORE, "rate": base.RATE,
                    "seconds": base.SECONDS, "load_before": load_before}
    portal: base.Portal | None = None
    rate_200: float | None = None
    for procs in PROCS:
        town.start("portal", procs)
        town.start("bare", procs)
        if portal is None:
            # Signed in through nginx: a session is the signed cookie and the store's, good on
            # every process; so are the listings and bids posted through it.
            portal = base.Portal(town.url("portal"), data)
            print(f"town up in {time.monotonic() - started:.0f} s", file=sys.stderr)
            portal.deposit("bob", "40")
            portal.deposit("carol", "40")
            wait_for_tokens(portal, TOKENS_NEEDED)
        rate_200 = rounds(town, portal, bare_direct, result, procs, rate_200)
    return {**result, "load_after": os.getloadavg(),
            "minutes": (time.monotonic() - started) / 60}


def report(result: dict) -> str:
    """The figures as the text block docs/BENCHMARKS.md shows."""
    goals = ", ".join(f"p99 <= {r}x bare x1 at {c}" for c, r in base.GOAL_RATIO.items())
    lines = [f"bid -> bid_placed at every client, paced bids for {result['seconds']:.0f} s, "
             f"websocket clients on /market through nginx (hash on address and port) over "
             f"loopback (goals: {goals})",
             f"{'server':<14}{'procs':>6}{'clients':>8}{'asked/s':>8}{'bids/s':>8}"
             f"{'p50 ms':>9}{'p99 ms':>9}{'x bare1 p99':>12}{'x bareN p99':>12}{'POST p50':>10}"
             f"{'lost':>7}{'CPU ms/bid':>11}{'others':>8}{'goal':>6}"]
    rows = [r for r in result["rows"] if not r["probe"]]
    # The reference: one bare process, no Redis, no nginx, same clients and rate.
    direct = {(r["clients"], r["offered"]): r for r in rows if r["server"] == "bare direct"}
    alike = {(r["procs"], r["clients"], r["offered"]): r for r in rows if r["server"] == "bare"}
    for r in result["rows"]:
        key = (r["clients"], r["offered"])
        ref = direct.get(key) if r["server"] != "bare direct" else None
        same = alike.get((r["procs"], *key)) if r["server"] == "portal" else None
        x1 = f"{r['p99'] / ref['p99']:.2f}" if ref else ""
        xn = f"{r['p99'] / same['p99']:.2f}" if same else ""
        goal = base.GOAL_RATIO.get(r["clients"]) if ref and r["server"] == "portal" else None
        kept = r["rate"] >= 0.9 * r["offered"]  # as bench/portal.py: the asked rate, or a miss
        verdict = "" if goal is None else (
            "ok" if r["p99"] <= goal * ref["p99"] and kept else "MISS")
        name = r["server"] + (" *" if r["probe"] else "")
        lines.append(f"{name:<14}{r['procs']:>6}{r['clients']:>8}{r['offered']:>8.0f}"
                     f"{r['rate']:>8.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{x1:>12}{xn:>12}"
                     f"{r['post_p50']:>10.1f}{r['lost']:>7}{r['cpu_ms_per_bid']:>11.2f}"
                     f"{r['others_cpu_ms_per_bid']:>8.2f}{verdict:>6}".rstrip())
    lines += [
        "* the probe: one bare process asked 100 bids/s at 200 clients; what it reached is the "
        "rate of the 200-client rounds",
        "bare direct: bench/portal.py's one bare process, no Redis, no nginx (x bare1 divides "
        "by it); bare: N bare processes on socketio.RedisManager behind nginx (x bareN)",
        "CPU ms/bid: the servers' workers summed, per bid; others: Redis, nginx, PostgreSQL, "
        "anvil, the arbiters and the local bridge (bare: Redis, nginx, arbiters)",
        *[f"portal x{r['procs']} at {r['clients']}, others by part over the whole round "
          "(connects too), ms/bid: " + ", ".join(f"{k} {v:.2f}"
                                               for k, v in r["parts_ms_per_bid"].items())
          for r in result["rows"] if "parts_ms_per_bid" in r],
        "idle (no clients, no bids), cores: " + "; ".join(
            f"{kind} x{procs} {cores[0]:.2f} + others {cores[1]:.2f}"
            for procs, kinds in result["idle"].items() for kind, cores in kinds.items()),
        f"store: {result['store']}; "
        "load average (1 min) at the start {:.1f}, at the end {:.1f}; {:.1f} min".format(
            result["load_before"][0], result["load_after"][0], result["minutes"])]
    return "\n".join(lines)


def main() -> None:
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    # SIGTERM and SIGHUP unwind like Ctrl-C does: every started process is stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: sys.exit(128 + number))
    with tempfile.TemporaryDirectory(prefix="gridbid-procs-") as data, \
            contextlib.ExitStack() as stack:
        result = bench(stack, data)
    print(report(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve-portal":
        serve_portal(sys.argv[2], int(sys.argv[3]), *sys.argv[4:7])
    elif command == "serve-bare":
        base.serve_bare(int(sys.argv[2]), sys.argv[3])
    else:
        main()
