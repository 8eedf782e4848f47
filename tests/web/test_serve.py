"""`gridbid run` on gunicorn: one threaded worker, the runtime (here its anvil) started in the
worker after the fork, a stop that closes open WebSockets and stops the runtime, bad server
settings refused before anything starts."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from firmware_bridge.remote import socketio_client
from geth_private.anvil import find_anvil, free_port
from tests.common import portal_login, wait_for
from web.serve import PortalWorker, bind_address, options

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_is_one_threaded_worker_that_is_never_recycled():
    settings = {"WORKER_THREADS": 250, "WORKER_TIMEOUT_S": 120, "GRACEFUL_TIMEOUT_S": 10}
    chosen = options(settings, "127.0.0.1", 5000)
    assert chosen["workers"] == 1 and chosen["threads"] == 250
    assert chosen["worker_class"] is PortalWorker
    assert chosen["preload_app"] is False and chosen["max_requests"] == 0
    assert chosen["bind"] == ["127.0.0.1:5000"]
    assert bind_address("::1", 5000) == "[::1]:5000"
    for bad in (0, -3, "many", 2.5, True):
        with pytest.raises(ValueError, match="WORKER_THREADS must be a whole number"):
            options({**settings, "WORKER_THREADS": bad}, "127.0.0.1", 5000)


def test_bad_server_settings_are_refused_with_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "run", "--data-dir", str(tmp_path), "--threads", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "WORKER_THREADS must be a whole number of at least 1, not 0" in done.stderr
    assert "Traceback" not in done.stderr and "Starting gunicorn" not in done.stderr


@pytest.mark.skipif(find_anvil() is None, reason="needs anvil (`npm ci`)")
def test_the_runtime_lives_in_the_worker_and_stops_with_it(tmp_path):
    port = free_port()
    log = tmp_path / "portal.log"
    env = {**os.environ, "GRIDBID_SCRYPT_N": "1024", "PYTHONUNBUFFERED": "1"}
    portal = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "run", "--port", str(port), "--data-dir",
         str(tmp_path / "var"), "--chain", "anvil://", "--threads", "8"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = socketio_client()
    try:
        wait_for(lambda: _answers(url, portal, log), timeout=90, what="the portal to serve")
        text = log.read_text()
        assert "development server" not in text and "Using worker: PortalWorker" in text
        worker = int(re.search(r"Booting worker with pid: (\d+)", text)[1])
        anvil = int((tmp_path / "var" / "anvil.pid").read_text().split()[0])
        # The chain child belongs to the worker, not to the arbiter `gridbid run` is.
        assert _parent(anvil) == worker and _parent(worker) == portal.pid

        # An idle connection outlives gunicorn's default 2 s: nginx's upstream ones (60 s)
        # and a client's kept-alive session send on them again.
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        kept.request("GET", "/login")
        assert kept.getresponse().read() and kept.sock is not None
        time.sleep(3)
        kept.request("GET", "/login")
        assert kept.getresponse().status == 200
        kept.close()

        # An open WebSocket does not hold the stop up (PortalWorker closes it).
        alice = portal_login(url, "alice", tmp_path / "var")
        cookie = "; ".join(f"{k}={v}" for k, v in alice.transport.session.cookies.items())
        client.connect(url, namespaces=["/market"], headers={"Cookie": cookie},
                       transports=["websocket"], wait_timeout=20)
        portal.send_signal(signal.SIGTERM)
        assert portal.wait(60) == 0
        text = log.read_text()
        assert "SIGKILL" not in text and "Worker exiting" in text
        assert not Path(f"/proc/{anvil}").exists()  # runtime.stop() on the worker's exit
        assert (tmp_path / "var" / "anvil-state.json").exists()
    finally:
        client.disconnect()
        if portal.poll() is None:
            portal.kill()
            portal.wait(10)


def _answers(url: str, portal: subprocess.Popen, log: Path) -> bool:
    if portal.poll() is not None:
        pytest.fail(f"the portal exited: {log.read_text()[-3000:]}")
    try:
        return requests.get(f"{url}/login", timeout=5).status_code == 200
    except requests.ConnectionError:  # refused until the runtime is up
        return False


def _parent(pid: int) -> int:
    """A process's parent pid, from /proc (field 4 of stat, after the name in parentheses)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
