"""nginx (Debian's, with deploy/nginx/gridbid-proxy.conf) in front of two `gridbid run`
processes on one PostgreSQL, Redis and anvil: a page and Socket.IO go through it; kill -9 the
process nginx sends this client to, which holds the settlement lease: nginx's upstream
failover answers from the other, whose Socket.IO takes the client back and whose tick takes
the lease."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from firmware_bridge.remote import socketio_client
from geth_private.anvil import find_anvil, free_port
from tests.common import portal_login, wait_for
from tests.services import NginxServer

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a shared chain)")

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "nginx" / "gridbid-proxy.conf"


class Process:
    """One `gridbid run` on a free loopback port, its output in a file."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], chain: str):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "run", "--port", str(self.port),
             "--chain", chain, "--data-dir", str(tmp / "var"), "--threads", "20"],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text()

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited: {self.text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/login", timeout=5).status_code == 200
        except requests.ConnectionError:  # refused until its runtime is up (web.serve)
            return False

    def worker_pid(self) -> int:
        return int(re.search(r"Booting worker with pid: (\d+)", self.text())[1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def upstream(first: Process, second: Process) -> str:
    """The test's http block: the deploy's proxy locations behind an ip_hash upstream; each
    answer says which upstream(s) nginx tried (a test header, not in deploy/)."""
    return f"""
    upstream gridbid {{
        ip_hash;
        server 127.0.0.1:{first.port} max_fails=1 fail_timeout=10s;
        server 127.0.0.1:{second.port} max_fails=1 fail_timeout=10s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:PORT;
        add_header X-Upstream $upstream_addr always;
        include {PROXY};
    }}"""


def answered_by(url: str) -> str:
    """The upstream that answered a page through nginx (the last one nginx tried)."""
    reply = requests.get(f"{url}/login", timeout=10)
    assert reply.status_code == 200, reply.text[:300]
    return reply.headers["X-Upstream"].split(",")[-1].strip()


@pytest.fixture
def processes(tmp_path, chain, postgres_url, redis_url):
    env = {**os.environ, "GRIDBID_STORE_URL": postgres_url, "GRIDBID_MESSAGE_QUEUE": redis_url,
           "GRIDBID_SECRET_KEY": "shared-by-the-processes", "GRIDBID_SCRYPT_N": "1024",
           "GRIDBID_PROXY_HOPS": "1", "GRIDBID_TICK_S": "0.1", "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{chain.port}"
    started = []
    try:
        for name in ("a", "b"):
            started.append(Process(name, tmp_path, env, url))
        for process in started:
            wait_for(process.ready, timeout=90, what=f"portal {process.name} to serve")
        yield started
    finally:
        for process in started:
            process.stop()


def test_nginx_fails_over_to_the_other_process(tmp_path, processes):
    a, b = processes
    for process in processes:
        assert "development server" not in process.text()  # gunicorn, not werkzeug
        assert "Using worker: PortalWorker" in process.text()
    leader = wait_for(lambda: next((p for p in processes if "takes settlement" in p.text()),
                                   None), what="one process to take the settlement lease")
    other = b if leader is a else a

    # ip_hash sends every loopback client to one server: make it the lease holder.
    nginx_root = tmp_path / "nginx"
    nginx_root.mkdir()
    nginx = NginxServer(nginx_root, upstream(leader, other))
    try:
        if answered_by(nginx.url) != f"127.0.0.1:{leader.port}":
            nginx.reload(upstream(other, leader))
            wait_for(lambda: answered_by(nginx.url) == f"127.0.0.1:{leader.port}",
                     what="nginx to take the swapped upstream order")
        _through(nginx, leader, other, tmp_path / "var")
    finally:
        nginx.stop()


def _through(nginx: NginxServer, leader: Process, other: Process, data: Path) -> None:
    """Sign in and open Socket.IO through nginx, kill the leader, see the other take over."""
    alice = portal_login(nginx.url, "alice", data)
    assert alice.wallet()["address"]
    snapshots: list[dict] = []  # one per (re)connection to /market
    client = socketio_client(reconnection_delay=0.2, reconnection_delay_max=1)
    client.on("snapshot", snapshots.append, namespace="/market")
    cookie = "; ".join(f"{k}={v}" for k, v in alice.transport.session.cookies.items())
    client.connect(nginx.url, namespaces=["/market"], headers={"Cookie": cookie},
                   transports=["websocket"], wait_timeout=20)
    try:
        wait_for(lambda: snapshots, what="the /market snapshot through nginx")
        assert len(snapshots) == 1
        assert client.transport() == "websocket"  # the upgrade passed through nginx

        worker = leader.worker_pid()
        leader.process.kill()  # kill -9 of `gridbid run`: its worker dies with it
        leader.process.wait(10)
        wait_for(lambda: not Path(f"/proc/{worker}").exists(), timeout=10,
                 what="the killed portal's worker to die with it")

        # Every request after the kill is answered, by the other process.
        for _ in range(5):
            assert answered_by(nginx.url) == f"127.0.0.1:{other.port}"
        assert alice.wallet()["address"]  # the same session, signed in, on the other one
        # The client may be back already (its reconnect races the requests above).
        wait_for(lambda: len(snapshots) > 1, timeout=30,
                 what="Socket.IO to reconnect through nginx to the other process")
        assert client.transport() == "websocket"
        wait_for(lambda: "takes settlement" in other.text(), timeout=30,
                 what="the other process to take the settlement lease")
    finally:
        client.disconnect()
