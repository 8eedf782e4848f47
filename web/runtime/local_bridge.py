"""This portal's own boards served by a `gridbid bridge` child process (LOCAL_BRIDGE=process),
registered in the store like any bridge: its token in the data directory, its meter keys too.

The child runs the participants' emulated boards (emulator:// URIs) and connects back to the
portal's own URL (LOCAL_BRIDGE_PORTAL) over /bridge, so the market reaches them by the same
code path as a bridge on another machine. It ends with its portal (a single portal's boards
have no one else to serve them); boards meant to outlive a worker run in a bridge of their
own (docs/BRIDGES.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from geth_private.keystore import MachineKeys
from marketplace.store import Store

log = logging.getLogger(__name__)

LOCAL_ID = "local"  # the local bridge's registered id
TOKEN_FILE = "local_bridge.token"  # in the data directory, readable by its user only
STOP_WAIT_S = 10.0
MODES = ("inline", "process")


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a bridge token is kept as."""
    return hashlib.sha256(token.encode()).hexdigest()


def mode(config: Mapping[str, Any]) -> str:
    """LOCAL_BRIDGE: inline (boards attached to a bridge in this process) or process; unset,
    process when the portal's own URL is known (LOCAL_BRIDGE_PORTAL) and it is one process
    (no MESSAGE_QUEUE: each of several workers would emulate the same boards; run them in a
    bridge of their own) whose boards no driver steps (EMULATOR_STEPPED), else inline."""
    value = str(config.get("LOCAL_BRIDGE") or "")
    if not value:
        alone = not config.get("MESSAGE_QUEUE") and not config.get("EMULATOR_STEPPED")
        return "process" if config.get("LOCAL_BRIDGE_PORTAL") and alone else "inline"
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

