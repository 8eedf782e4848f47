"""The portal's settings: defaults, then instance/config.py, GRIDBID_* variables, test overrides."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Config

from geth_private.files import locked, write_atomic

DEFAULTS: dict[str, Any] = {
    "CHAIN_URI": "anvil://",  # falls back to embedded:// when no anvil binary is installed
    "CHAIN_FALLBACK": True,
    "DATA_DIR": "var",
    "STORE_URL": "",  # postgresql://… for several workers (docs/SCALE.md); else DATA_DIR's SQLite
    "MESSAGE_QUEUE": "",  # redis://… carries Socket.IO emits between workers
    "SCRYPT_N": 2**18,
    "OPERATOR_PASSPHRASE": "",  # else DATA_DIR/operator_passphrase (generated, mode 0600)
    "OPERATOR_FUNDS_ETH": 100,  # the faucet tops the operator up to this for its gas
    "PROXY_HOPS": 0,  # reverse proxies in front whose X-Forwarded-For is believed (0: none)
    # host[:port] names the portal is served at, comma-separated (its sign-in messages name
    # one); empty: only this machine's (localhost, 127.0.0.1, [::1], any port).
    "PORTAL_HOSTS": "",
    "RPC_RATE_PER_S": 50,  # JSON-RPC calls a second each client may make through /rpc
    # The seed demo's participants with their printed passphrases and emulated boards; on for
    # `gridbid run` (`make run`), off for a deployment. Their logins come from loopback only.
    "DEMO_ACCOUNTS": False,
    "DEMO_FUNDS_ETH": 100,
    "EMULATOR_SPEED": 60.0,  # one emulated minute per second, so a demo trade takes seconds
    "EMULATOR_START_HOUR": 11.0,
    "EMULATOR_SKY": "clear",  # or "clouds"
    "PV_PEAK_W": 400,
    "LOAD_W": 240,
    # Demo boards served by `gridbid bridge` on another machine (each registered to its
    # bridge by the admin: POST /api/admin/bridges).
    "REMOTE_BOARDS": "",
    # inline: this machine's emulated boards on a bridge inside the portal process; process:
    # served by a `gridbid bridge` child registered like a remote bridge, reaching the portal
    # at LOCAL_BRIDGE_PORTAL (its own URL, e.g. http://127.0.0.1:5000); with several workers
    # one child, run by the holder of the `local bridge` lease; empty: process when
    # LOCAL_BRIDGE_PORTAL is set and EMULATOR_STEPPED is not (web/runtime/local_bridge.py).
    "LOCAL_BRIDGE": "",
    "LOCAL_BRIDGE_PORTAL": "",
    "STEP_WH": 5,
    "DEAL_TTL_S": 24 * 3600,  # a deal not done by then is stopped and closed (the escrow's
    # dealDuration: a chain deployed with another is redeployed)
    # The highest rated power the token enrolls a meter with, in W (fixed at deploy): bounds
    # what any one meter can mint an hour, even one its operator controls.
    "MAX_RATED_POWER_W": 1_000_000,
    # The longest auction; with SOFT_CLOSE_CAP_S and the bid validity it makes the escrow's
    # withdrawal notice (a chain deployed with another notice is redeployed).
    "MAX_DURATION_S": 24 * 3600,
    "BID_MIN_INCREMENT_WEI": 1,  # a new highest bid beats the last by this much …
    "BID_MIN_INCREMENT_PCT": 1.0,  # … and by this percentage, whichever is more
    "SOFT_CLOSE_S": 10,  # a bid in the last 10 s pushes the deadline back 10 s …
    "SOFT_CLOSE_CAP_S": 60,  # … at most 60 s past the first deadline
    "MINT_BATCH_WH": 10,
    # The bus check: the buyers' meters must receive what the sellers' sent, less the line
    # loss, ± the meters' accuracy and a floor, judged every BUS_WINDOW_WH of flow or BUS_WINDOW_S.
    "LINE_LOSS": 0.05,
    "METER_ACCURACY": 0.02,
    "BUS_FLOOR_WH": 2.0,
    "BUS_WINDOW_WH": 5.0,
    "BUS_WINDOW_S": 30.0,
    # The interval market: an interval of INTERVAL_S emulated seconds (EMULATOR_SPEED times
    # shorter on the wall clock), pay-as-clear ("clear") or pay-as-bid ("bid"), a participant
    # settled on chain once SETTLE_WH are unsettled and at each day's end.
    "INTERVAL_S": 900,
    "PRICING": "clear",
    "SETTLE_WH": 1000,
    "INTERVAL_TICK_S": 0.2,
    # An interval in block seconds for the settlement contract's reading-age bounds (0:
    # INTERVAL_S / EMULATOR_SPEED; tests whose market clock is moved by hand set more).
    "INTERVAL_WALL_S": 0,
    "TICK_S": 0.2,
    "EVENT_POLL_S": 0.5,
    "WALLET_PUSH_S": 1.0,
    "GRID_PUSH_S": 1.0,  # the live charts get a sample of every board this often
    "ADMINS": "admin",  # names or addresses of accounts that may open the admin page
    "LOGIN_RATE_PER_S": 0.5,  # sign-in attempts a second per client address …
    "LOGIN_BURST": 20,  # … after a burst of this many (no account is ever locked)
    "SESSION_IDLE_S": 1800,  # a session idle this long ends (the page drops its key too)
    # Bodies beyond this are refused (413) before anything reads them: a keystore is ~1 KiB,
    # a full /rpc batch far less; unbounded, one request could fill the portal's memory.
    "MAX_CONTENT_LENGTH": 1 << 20,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def load(config: Config, test_config: dict[str, Any] | None = None) -> None:
    """Fill an app's config in the Flask tutorial's order; secrets kept in DATA_DIR if unset."""
    config.from_mapping(DEFAULTS)
    config.from_pyfile("config.py", silent=True)
    config.from_prefixed_env("GRIDBID")
    # As typed: from_prefixed_env would read a passphrase such as 1e3 as the number 1000.0.
    if os.environ.get("GRIDBID_OPERATOR_PASSPHRASE"):
        config["OPERATOR_PASSPHRASE"] = os.environ["GRIDBID_OPERATOR_PASSPHRASE"]
    if test_config:
        config.from_mapping(test_config)
    data_dir = Path(config["DATA_DIR"])
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret(data_dir, "secret_key")


def _secret(data_dir: Path, name: str) -> str:
    """A secret kept in the data directory, so it survives a restart."""
    path = data_dir / name
    # Workers starting at once on one data directory must share one secret (a session signed
    # by one worker is read by the other), so one of them makes it, written whole.
    with locked(path):
        if not path.exists():
            write_atomic(path, secrets.token_hex(32), 0o600)
        return path.read_text().strip()
