"""This portal's own boards served by a `gridbid bridge` child process (LOCAL_BRIDGE=process),
registered in the store like any bridge: its token in the data directory, its meter keys too.

The child runs the participants' emulated boards (emulator:// URIs) and connects back to its
worker's own URL (LOCAL_BRIDGE_PORTAL) over /bridge, so the market reaches them by the same
code path as a bridge on another machine. Workers sharing a store run one such child among
them: the holder of the `local bridge` lease (LocalBridgeKeeper). The child ends with the
worker that started it; another worker then takes the lease over and starts it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from geth_private.keystore import MachineKeys
from marketplace.lease import Lease
from marketplace.store import Store

log = logging.getLogger(__name__)

LOCAL_ID = "local"  # the local bridge's registered id
TOKEN_FILE = "local_bridge.token"  # in the data directory, readable by its user only
STOP_WAIT_S = 10.0
MODES = ("inline", "process")
LEASE = "local bridge"  # held by the one worker among those sharing a store that runs the child
KEEP_S = 1.0  # how often the keeper renews that lease and looks at its child
RESTART_S = 5.0  # a child that exited is started again no sooner than this after its start


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a bridge token is kept as."""
    return hashlib.sha256(token.encode()).hexdigest()


def mode(config: Mapping[str, Any]) -> str:
    """LOCAL_BRIDGE: inline (boards attached to a bridge in this process) or process; unset,
    process when the portal's own URL is known (LOCAL_BRIDGE_PORTAL) and no driver steps its
    boards (EMULATOR_STEPPED, which drives the emulator in-process), else inline. With a
    MESSAGE_QUEUE (several workers) process is what keeps one copy of the boards: inline,
    each worker would emulate its own."""
    value = str(config.get("LOCAL_BRIDGE") or "")
    if not value:
        stepped = config.get("EMULATOR_STEPPED")
        return "process" if config.get("LOCAL_BRIDGE_PORTAL") and not stepped else "inline"
    if value not in MODES:
        raise ValueError(f"LOCAL_BRIDGE is inline or process, not {value!r}")
    if value == "process" and not config.get("LOCAL_BRIDGE_PORTAL"):
        raise ValueError("LOCAL_BRIDGE=process needs LOCAL_BRIDGE_PORTAL, the URL the child "
                         "bridge reaches this portal at (e.g. http://127.0.0.1:5000)")
    if value == "process" and config.get("EMULATOR_STEPPED"):
        raise ValueError("LOCAL_BRIDGE=process cannot run with EMULATOR_STEPPED: a stepped "
                         "day drives the emulator inside the portal process")
    return value


def board_uris(specs: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    """Each participant's emulated board as an emulator:// URI, on the portal's emulator clock."""
    uris = []
    for spec in specs:
        options: dict[str, Any] = {"kind": spec["role"], "speed": config["EMULATOR_SPEED"],
                                   "start_hour": config["EMULATOR_START_HOUR"] % 24}
        if spec["role"] == "producer":
            options["pv_peak_w"] = spec.get("pv_peak_w", config["PV_PEAK_W"])
            options["sky"] = spec.get("sky", config["EMULATOR_SKY"])
        else:
            options["load_w"] = spec.get("load_w", config["LOAD_W"])
        uris.append(f"emulator://{spec['board']}?{urlencode(options)}")
    return uris


def register_local(
    store: Store, data_dir: Path, keys: MachineKeys, specs: Sequence[Mapping[str, Any]],
    time_factor: float,
) -> Path:
    """Register (or keep) the local bridge with these boards and their meter keys; its token
    file. A registration whose boards or token differ is revoked and made again."""
    boards = [{"board_id": s["board"], "meter": keys.get(s["board"]).address,
               "time_factor": float(time_factor)} for s in specs]
    path = data_dir / TOKEN_FILE
    row = store.bridge(LOCAL_ID)
    token = path.read_text().strip() if path.exists() else ""
    if row is not None and token and row["token_sha256"] == token_hash(token) \
            and _same(row["boards"], boards):
        return path
    if row is not None:
        store.revoke_bridge(LOCAL_ID, time.time())
    token = secrets.token_urlsafe(32)
    refused = store.add_bridge(LOCAL_ID, token_hash(token), boards, time.time())
    if refused:
        raise ValueError(f"the local bridge cannot be registered: {refused}")
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    log.info("local bridge registered with boards %s", [b["board_id"] for b in boards])
    return path


def _same(registered: list[dict[str, Any]], boards: list[dict[str, Any]]) -> bool:
    def key(b: Mapping[str, Any]) -> tuple[str, str, float]:
        return b["board_id"], b["meter"].lower(), float(b.get("time_factor") or 1)
    return sorted(map(key, registered)) == sorted(map(key, boards))


class BridgeChild:
    """`gridbid bridge` as a child process serving uris to portal_url; stop() ends it."""

    def __init__(self, uris: Sequence[str], portal_url: str, token_file: Path, data_dir: Path):
        command = [sys.executable, "-m", "web.cli", "bridge", "--wait",
                   "--parent", str(os.getpid()),
                   *[arg for uri in uris for arg in ("--board", uri)],
                   "--portal", portal_url, "--bridge-id", LOCAL_ID,
                   "--token-file", str(token_file), "--data-dir", str(data_dir)]
        self.log_path = data_dir / "local_bridge.log"
        with self.log_path.open("a") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.info("local bridge started (pid %d, log %s)", self.process.pid, self.log_path)

    def stop(self) -> None:
        """Terminate the child (kill it if it does not stop in time)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_WAIT_S)



class LocalBridgeKeeper:
    """The one local bridge child among the workers sharing a store: the worker holding the
    `local bridge` lease runs it (started again if it exits); a worker without the lease
    runs none. step() each KEEP_S; close() on the worker's stop.

    The child stops within its parent check (0.5 s) of its worker's death, before the lease
    (lease_s) lets another worker start the next one, so two never serve the boards at once.
    """

    def __init__(self, store: Store, uris: Sequence[str], portal_url: str, token_file: Path,
                 data_dir: Path, lease_s: float):
        self.lease = Lease(store, LEASE, lease_s)
        self.start_child = lambda: BridgeChild(uris, portal_url, token_file, data_dir)
        self.child: BridgeChild | None = None
        self._started = -RESTART_S
        self._renewed = time.monotonic()  # the last time the store said the lease is ours
        self._lock = threading.Lock()  # step (its loop) and close (the stop) take turns

    def step(self) -> None:
        """Renew the lease; held: have the child running; lost: stop this worker's child."""
        with self._lock:
            if not self._holds():
                self._stop_child()
                return
            if self.child is not None and self.child.process.poll() is None:
                return
            now = time.monotonic()
            if self.child is not None:
                log.warning("local bridge (pid %d) exited with status %s",
                            self.child.process.pid, self.child.process.returncode)
                self.child = None
            if now - self._started >= RESTART_S:  # a child failing at once is not spun
                self._started = now
                self.child = self.start_child()

    def _holds(self) -> bool:
        """Whether the lease is ours; while the store cannot say, as long as it cannot have
        expired (a store that is down lets no other worker take it either)."""
        try:
            held = self.lease.renew()
        except Exception as err:
            log.warning("local bridge lease not renewed: %s", err)
            return self.lease.held and time.monotonic() - self._renewed < self.lease.ttl_s
        if held:
            self._renewed = time.monotonic()
        return held

    def _stop_child(self) -> None:
        if self.child is not None:
            log.info("local bridge (pid %d) stopped: this worker left the lease",
                     self.child.process.pid)
            self.child.stop()
            self.child = None

    def close(self) -> None:
        """Stop the child and give the lease up, so another worker starts one at once."""
        with self._lock:
            if self.child is not None:
                self.child.stop()
                self.child = None
            self.lease.release()
