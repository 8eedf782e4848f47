"""anvil (from the npm package @foundry-rs/anvil-linux-amd64) as a managed child process."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from geth_private.backend import (
    BLOCK_PERIOD,
    MINE_ON_DEMAND,
    MINING_TOGGLE,
    PERSISTENT,
    SINGLE_NODE,
    SNAPSHOT,
    TIME_TRAVEL,
    TXPOOL,
    ChainBackend,
)
from geth_private.errors import ChainError, ChainUnavailable
from geth_private.provider import NodeProvider

log = logging.getLogger(__name__)

# anvil's well-known first dev account (mnemonic "test test ... junk"): a dev chain's faucet.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
NPM_BINARY = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil() -> str | None:
    """The anvil binary: ANVIL_BINARY, the project's npm install, or PATH."""
    if os.environ.get("ANVIL_BINARY"):
        return os.environ["ANVIL_BINARY"]
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = root / NPM_BINARY
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("anvil")


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AnvilControl:
    """anvil's mining and txpool RPCs, for a managed anvil or one found at a URL."""

    _period = 0  # seconds between interval-mined blocks; 0 = a block per transaction

    def _rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[attr-defined]
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error'].get('message')}")
        return response.get("result")

    def set_mining(self, on: bool) -> None:
        """Automine (and interval mining when a period is set) on, or everything off."""
        if on:
            self._rpc("evm_setAutomine", True)
            if self._period:
                self._rpc("evm_setIntervalMining", self._period)
        else:
            # Interval 0 also turns automine off, so it goes first.
            self._rpc("evm_setIntervalMining", 0)
            self._rpc("evm_setAutomine", False)

    def is_mining(self) -> bool:
        """Whether anvil mines on transactions or on an interval (asked, not remembered)."""
        return bool(self._rpc("anvil_getAutomine")) or bool(self._rpc("anvil_getIntervalMining"))

    def mine(self, blocks: int = 1) -> None:
        """Mine blocks now, mining on or off."""
        self._rpc("anvil_mine", hex(blocks))

    def set_block_period(self, seconds: int) -> None:
        """A block every `seconds` while mining (0: one per transaction)."""
        if seconds < 0:
            raise ValueError("the block period cannot be negative")
        self._period = seconds
        if self.is_mining():
            self.set_mining(True)
            if seconds == 0:
                self._rpc("evm_setIntervalMining", 0)
                self._rpc("evm_setAutomine", True)

    def block_period(self) -> int | None:
        """Seconds between blocks (0: a block per transaction)."""
        return self._period

    def pending_hashes(self) -> list[str]:
        """Transactions in anvil's pool."""
        content = self._rpc("txpool_content") or {}
        return [tx["hash"] for by_nonce in content.get("pending", {}).values()
                for tx in by_nonce.values()]

    def drop_transaction(self, tx_hash: str) -> None:
        """Remove a transaction from the pool, as a node under pressure might."""
        self._rpc("anvil_dropTransaction", tx_hash)

    def snapshot(self) -> object:
        """An evm_snapshot id."""
        return self._rpc("evm_snapshot")

    def revert(self, snapshot_id: object) -> None:
        """Return to an evm_snapshot."""
        self._rpc("evm_revert", snapshot_id)

    def time_travel(self, timestamp: int) -> None:
        """Stamp the next block with timestamp."""
        self._rpc("evm_setNextBlockTimestamp", timestamp)


class AnvilBackend(AnvilControl, ChainBackend):
    """A private anvil node bound to 127.0.0.1, its state kept in the data directory.

    URI: anvil://?state=PATH&interval=SECONDS&port=N&chain_id=N&period=SECONDS&hardfork=NAME
    """

    capabilities = frozenset(
        {MINING_TOGGLE, MINE_ON_DEMAND, BLOCK_PERIOD, TXPOOL, SNAPSHOT, PERSISTENT, TIME_TRAVEL,
         SINGLE_NODE}
    )

    def __init__(self, uri: str = "anvil://", data_dir: str | None = None):
        self.uri = uri
        query = {k: v[-1] for k, v in parse_qs(urlparse(uri).query).items()}
        base = Path(data_dir or "var")
        self.state_path = Path(query.get("state") or base / "anvil-state.json")
        self.state_interval = int(query.get("interval", 2))
        self.port = int(query.get("port", 0)) or None
        self.chain_id = int(query.get("chain_id", 1337))
        self._period = int(query.get("period", 0))
        self.hardfork = query.get("hardfork")  # e.g. london, to stand in for geth 1.13's EVM
        self.log_path = self.state_path.with_name("anvil.log")
        self._process: subprocess.Popen | None = None
        self._w3: Web3 | None = None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise ChainUnavailable("anvil is not started")
        return self._w3

    def command(self, binary: str, port: int) -> list[str]:
        """The anvil command line: loopback only, state loaded and dumped periodically."""
        return [
            binary, "--host", "127.0.0.1", "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--state", str(self.state_path), "--state-interval", str(self.state_interval),
            "--accounts", "1", "--balance", "1000000000",
            *(["--block-time", str(self._period)] if self._period else []),
            *(["--hardfork", self.hardfork] if self.hardfork else []),
        ]

    def start(self) -> None:
        if self._process is not None:
            return
        binary = find_anvil()
        if binary is None:
            raise ChainUnavailable(
                "anvil not found: run `npm ci` (it installs @foundry-rs/anvil-linux-amd64) "
                "or set ANVIL_BINARY"
            )
        # The port stays the node's after the first start, so clients made before a restart
        # (web3 providers, contract objects) reach it again.
        port = self.port = self.port or free_port()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self._process = subprocess.Popen(
            self.command(binary, port), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )
        log_file.close()

        url = f"http://127.0.0.1:{port}"
        self.pid_path.write_text(f"{self._process.pid}\n{url}\n")  # for tools and crash recovery
        self._w3 = Web3(NodeProvider(url, timeout=30))
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                self._process = self._w3 = None
                raise ChainUnavailable(f"anvil exited at start; its log ends:\n{tail}")
            try:
                if self._w3.eth.chain_id == self.chain_id:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ChainUnavailable(f"anvil did not answer on port {port} within 20 s")
            time.sleep(0.05)
        log.info("anvil up on 127.0.0.1:%s, state %s", port, self.state_path)

    def stop(self) -> None:
        """Stop anvil; it writes its state file on the way out."""
        process, self._process = self._process, None
        self._w3 = None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """Kill anvil without letting it save (tests of crash recovery)."""
        process, self._process = self._process, None
        self._w3 = None
        if process is not None:
            process.kill()
            process.wait(timeout=5)

    def faucet(self) -> LocalAccount:
        return Account.from_key(DEV_KEY)

    @property
    def pid_path(self) -> Path:
        """Where the running anvil's pid is kept, to find it after the portal crashed."""
        return self.state_path.with_name("anvil.pid")

    def _stop_orphan(self) -> None:
        """Stop an anvil a crashed portal left on this state file, letting it save first."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if not cmdline or not cmdline[0].endswith(b"anvil") or str(self.state_path).encode() \
                not in cmdline:
            return
        log.warning("stopping anvil %s left running on %s", pid, self.state_path)
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the portal dies, even by kill -9 (Linux prctl)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the pid file still lets the next start stop an orphan
