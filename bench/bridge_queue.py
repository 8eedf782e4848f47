"""A relay command's round trip to a bridge: from the worker it is connected to, and from
another worker through the Redis message queue (what the settling worker does when the bridge
is connected elsewhere); one emulated board behind a real Bridge and RemoteBridge.

Two python-socketio servers (the portal's Socket.IO stack, without the market) share one
redis-server started here on a free port; the bridge connects to server B. 500 set_relay
commands each way, one after the other; once with python-socketio's own RedisManager, once with
the portal's SignedRedisManager (web/signed_queue.py: every queue message HMAC-signed and
checked), so the signing's cost is the difference. Run: .venv/bin/python bench/bridge_queue.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import socketio  # noqa: E402
from eth_account import Account  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from firmware_bridge.bridge import Bridge  # noqa: E402
from firmware_bridge.emulator import Microgrid  # noqa: E402
from firmware_bridge.remote import RemoteBridge  # noqa: E402
from geth_private.anvil import free_port  # noqa: E402
from web.signed_queue import signed_manager  # noqa: E402

N = 500
WARMUP = 20


def portal(manager: socketio.RedisManager, sids: list[str]) -> tuple[socketio.Server, object]:
    """A Socket.IO server on the queue whose /bridge namespace admits and answers hello."""
    sio = socketio.Server(async_mode="threading", client_manager=manager)
    sio.on("connect", lambda sid, environ, auth=None: sids.append(sid) or True,
           namespace="/bridge")
    token = Account.create().address
    sio.on("hello", lambda sid, data: {"contracts": [token], "chain_id": 1337, "token": token},
           namespace="/bridge")
    server = make_server("127.0.0.1", 0, socketio.WSGIApp(sio), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sio.manager_initialized = True  # as web.bridges.hear_queue does
    sio.manager.initialize()
    return sio, server


def round_trips(sio: socketio.Server, sid: str) -> list[float]:
    times = []
    for i in range(WARMUP + N):
        start = time.perf_counter()
        answer = sio.call("command", {"board_id": "c1", "action": "set_relay", "on": i % 2 == 0},
                          to=sid, namespace="/bridge", timeout=10)
        assert answer == {"ok": True}, answer
        times.append((time.perf_counter() - start) * 1000)
    return times[WARMUP:]


def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    grid = Microgrid(speed=60.0)
    grid.add_consumer("c1")
    bridge = Bridge(heartbeat_s=0.5, meter_keys=lambda board: Account.create())
    try:
        time.sleep(0.5)
        for device in grid.start().values():
            bridge.attach(device)
        rows = []
        for kind, manager in (("plain", lambda: socketio.RedisManager(url)),
                              ("signed", lambda: signed_manager(url, "bench secret"))):
            rows += _pair(kind, manager, bridge)
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"set_relay round trips, {N} each, ms (one run, load average {load})")
        print(f"{'path':40} {'p50':>7} {'p99':>7}")
        for name, times in rows:
            cuts = statistics.quantiles(times, n=100)
            print(f"{name:40} {statistics.median(times):7.2f} {cuts[98]:7.2f}")
    finally:
        bridge.close()
        grid.stop()
        redis.terminate()
        redis.wait(10)


def _pair(kind: str, manager, bridge: Bridge) -> list[tuple[str, list[float]]]:
    """Round trips through two servers on managers made by manager(), the bridge on B."""
    a, _server_a = portal(manager(), [])
    sids: list[str] = []
    b, server_b = portal(manager(), sids)
    remote = RemoteBridge(bridge, f"http://127.0.0.1:{server_b.server_port}", "t",
                          bridge_id=f"bench-{kind}")
    remote.connect()
    try:
        return [(f"{kind}: from the bridge's worker", round_trips(b, sids[0])),
                (f"{kind}: from another worker (Redis)", round_trips(a, sids[0]))]
    finally:
        remote.close()


if __name__ == "__main__":
    main()
