"""The killable parts of a chaos day: each one process (or server) with start, kill and ready.

A part is what an operator would run under a supervisor: a portal worker (`gridbid run`), a
bridge (`gridbid bridge`), the chain node (anvil with a state dump), PostgreSQL and Redis. The
emulated boards (`gridbid emulate`) are the hardware: they are not killed, and their counters
are the outside truth the day is reconciled against.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

import requests

from geth_private.anvil import AnvilBackend, free_port
from simulation.chaos.services import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def bridge_fails_over() -> bool:
    """Whether this gridbid's bridge takes several --portal URLs (moving on when one dies)."""
    text = subprocess.run([sys.executable, "-m", "web.cli", "bridge", "--help"], cwd=ROOT,
                          capture_output=True, text=True).stdout
    return "repeat for each worker" in " ".join(text.split())


class Part(ABC):
    """One killable part: started, killed with SIGKILL, started again in place."""

    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def start(self) -> None:
        """Start the part (again after a kill: same port, same files)."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL the part, as a crash would."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether the part answers now."""

    def stop(self) -> None:
        """Stop the part at the end of the day (a kill unless the part says otherwise)."""
        self.kill()


class ServicePart(Part):
    """PostgreSQL or Redis, through its server object."""

    def __init__(self, kind: str, server: PostgresServer | RedisServer) -> None:
        super().__init__(kind)
        self.kind = kind
        self.server = server

    def start(self) -> None:
        """Start the server on its port and files."""
        self.server.start()

    def kill(self) -> None:
        """SIGKILL the server."""
        self.server.kill()

    def ready(self) -> bool:
        """Whether it answers a query (PostgreSQL) or PING (Redis)."""
        return self.server.ready()

    def stop(self) -> None:
        """Stop the server (and remove its files: the books were read before)."""
        self.server.stop()


class ChainPart(Part):
    """anvil dumping its state every few seconds; killed, it comes back from the last dump."""

    kind = "chain"

    def __init__(self, directory: Path, state_interval_s: int = 2) -> None:
        super().__init__("chain")
        port = free_port()
        self.node = AnvilBackend(f"anvil://?interval={state_interval_s}&port={port}",
                                 str(directory))
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        """Start anvil from its state file (none the first time)."""
        self.node.start()

    def kill(self) -> None:
        """SIGKILL anvil: the blocks since its last dump are gone."""
        self.node.kill()

    def ready(self) -> bool:
        """Whether anvil answers eth_blockNumber."""
        try:
            answer = requests.post(self.url, json={"jsonrpc": "2.0", "id": 1,
                                                   "method": "eth_blockNumber", "params": []},
                                   timeout=2)
            return "result" in answer.json()
        except (requests.RequestException, ValueError):
            return False

    def head(self) -> int | None:
        """The node's block number (None while it is down)."""
        try:
            answer = requests.post(self.url, json={"jsonrpc": "2.0", "id": 1,
                                                   "method": "eth_blockNumber", "params": []},
                                   timeout=2)
            return int(answer.json()["result"], 16)
        except (requests.RequestException, ValueError, KeyError):
            return None

    def stop(self) -> None:
        """Stop anvil, letting it write its state."""
        self.node.stop()


class ProcessPart(Part):
    """A gridbid command as a child process, its output appended to a log file."""

    def __init__(self, name: str, log: Path, env: dict[str, str]) -> None:
        super().__init__(name)
        self.log = log
        self.env = env
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @abstractmethod
    def command(self) -> list[str]:
        """The command line."""

    def start(self) -> None:
        """Start the command; its output goes to the log, marked with the start's number."""
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n=== start {self.starts} at {time.strftime('%H:%M:%S')} ===\n")
            out.flush()
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process (its own children die with it: they ask for PDEATHSIG)."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; then the rest of its process group."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only its children
            except ProcessLookupError:
                pass

    def tail(self, chars: int = 3000) -> str:
        """The end of the log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class WorkerPart(ProcessPart):
    """A portal process: `gridbid run` on its own port, sharing data dir, store, queue, chain."""

    kind = "worker"

    def __init__(self, name: str, log: Path, env: dict[str, str], chain_url: str,
                 data_dir: Path) -> None:
        super().__init__(name, log, env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chain_url = chain_url
        self.data_dir = data_dir

    def command(self) -> list[str]:
        """`gridbid run` on this worker's port."""
        return [sys.executable, "-m", "web.cli", "run", "--port", str(self.port),
                "--chain", self.chain_url, "--data-dir", str(self.data_dir)]

    def ready(self) -> bool:
        """Whether its sign-in page answers."""
        if not self.alive():
            return False
        try:
            return requests.get(f"{self.url}/login", timeout=2).status_code == 200
        except requests.RequestException:
            return False


class BoardsPart(ProcessPart):
    """The emulated boards (`gridbid emulate --socket`): hardware, never killed."""

    kind = "boards"

    def __init__(self, log: Path, env: dict[str, str], boards: list[tuple[str, str]],
                 speed: float, start_hour: float, pv_peak_w: float) -> None:
        super().__init__("boards", log, env)
        self.boards = boards
        self.speed = speed
        self.start_hour = start_hour
        self.pv_peak_w = pv_peak_w
        self.devices: dict[str, str] = {}

    def command(self) -> list[str]:
        """`gridbid emulate` of every board, each on a loopback port."""
        args = [sys.executable, "-u", "-m", "web.cli", "emulate", "--socket",
                "--speed", str(self.speed), "--start-hour", str(self.start_hour),
                "--pv-peak-w", str(self.pv_peak_w)]
        for board, kind in self.boards:
            args += ["--board", f"{board}:{kind}"]
        return args

    def start(self) -> None:
        """Start the boards and read their `board kind socket://…` lines."""
        super().start()
        deadline = time.monotonic() + 30
        while len(self.devices) < len(self.boards):
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulated boards did not start: {self.tail()}")
            for line in self.log.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].startswith("socket://"):
                    self.devices[parts[0]] = parts[2]
            time.sleep(0.1)

    def ready(self) -> bool:
        """Whether the boards' process runs."""
        return self.alive()


class BridgePart(ProcessPart):
    """`gridbid bridge` serving some boards to the portal workers."""

    kind = "bridge"

    def __init__(self, name: str, log: Path, env: dict[str, str], devices: list[str],
                 portals: list[str], token_file: Path, data_dir: Path) -> None:
        super().__init__(name, log, env)
        self.devices = devices
        self.portals = portals
        self.token_file = token_file
        self.data_dir = data_dir

    def command(self) -> list[str]:
        """The bridge, its boards' ports and every portal it may serve."""
        args = [sys.executable, "-u", "-m", "web.cli", "bridge", "--bridge-id", self.name,
                "--token-file", str(self.token_file), "--data-dir", str(self.data_dir)]
        for device in self.devices:
            args += ["--port", device]
        # A bridge that cannot fail over between portals serves the first (its worker).
        for portal in self.portals if bridge_fails_over() else self.portals[:1]:
            args += ["--portal", portal]
        return args

    def ready(self) -> bool:
        """Whether it runs and has announced its boards since its last start."""
        if not self.alive():
            return False
        text = self.log.read_text(errors="replace")
        last = text[text.rfind("=== start"):]
        return "portal accepted boards" in last
