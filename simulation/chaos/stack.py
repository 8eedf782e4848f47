"""The town's processes for a chaos day: services, chain, portal workers, boards and bridges."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from geth_private import Keystore
from geth_private.keystore import MachineKeys
from gridbid_client import keys
from gridbid_client.client import Client
from simulation.chaos.parts import (
    BoardsPart,
    BridgePart,
    ChainPart,
    Part,
    ServicePart,
    WorkerPart,
)
from simulation.chaos.services import PostgresServer, RedisServer
from web.runtime.accounts import AccountDirectory

SCRYPT_N = 1024  # throwaway accounts: cheap keystores
ADMIN_PASSPHRASE = "chaos-admin"


@dataclass
class Layout:
    """How many of each part, and the pace of the emulated day."""

    producers: int = 2
    consumers: int = 3
    workers: int = 2
    bridges: int = 2
    speed: float = 300.0
    start_hour: float = 11.0
    # A panel small enough that its battery (1.2 kWh, half full) is not full before trading
    # begins: the stack's start takes ~30 wall s (5 emulated h at ×600), and a full battery
    # curtails the PV, so its meter counts no generation to sell after its token's baseline.
    pv_peak_w: float = 60.0

    def people(self) -> list[dict[str, Any]]:
        """The participants as config PARTICIPANTS takes them."""
        made = [{"name": f"p{i}", "role": "producer", "board": f"pv-p{i}"}
                for i in range(1, self.producers + 1)]
        made += [{"name": f"c{i}", "role": "consumer", "board": f"load-c{i}"}
                 for i in range(1, self.consumers + 1)]
        return [{**p, "passphrase": f"{p['name']}-chaos"} for p in made]


def _wait(what: str, ready, timeout: float, part: Part | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tail = getattr(part, "tail", lambda: "")()
            raise RuntimeError(f"{what} not ready within {timeout:g} s\n{tail}")
        time.sleep(0.2)


class Stack:
    """Every process of the day, started in order; stopped whatever happened."""

    def __init__(self, out: Path, layout: Layout) -> None:
        # Absolute: every part runs from the repository (cwd=ROOT), and a relative --out (the
        # CLI's default var/simulation/…) named another directory there, whose workers made
        # their own admin: the harness's login was refused NotAParticipant at the start.
        self.out = Path(out).absolute()
        self.layout = layout
        self.people = layout.people()
        self.data = self.out / "var"
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.parts: list[Part] = []
        self.postgres: PostgresServer | None = None
        self.store_url = ""
        self.chain: ChainPart | None = None
        self.workers: list[WorkerPart] = []
        self.bridges: list[BridgePart] = []
        self.boards: BoardsPart | None = None

    def start(self) -> None:
        """Services, chain, workers, boards, then the bridges the admin registers."""
        self.postgres = PostgresServer()
        self.parts.append(ServicePart("postgres", self.postgres))
        self.store_url = self.postgres.new_database()
        redis = RedisServer(str(self.logs / "redis.log"))
        self.parts.append(ServicePart("redis", redis))
        self.chain = ChainPart(self.out / "chain")
        self.parts.append(self.chain)
        self.chain.start()
        self._seat_admin()
        env = self._env(redis.url)
        self.workers = [WorkerPart(f"worker-{chr(97 + i)}", self.logs / f"worker-{i}.log", env,
                                   self.chain.url, self.data)
                        for i in range(self.layout.workers)]
        boards = [(p["board"], p["role"]) for p in self.people]
        self.boards = BoardsPart(self.logs / "boards.log", env, boards, self.layout.speed,
                                 self.layout.start_hour, self.layout.pv_peak_w)
        self.parts += [*self.workers, self.boards]
        for worker in self.workers:
            worker.start()
        self.boards.start()
        for worker in self.workers:
            _wait(worker.name, worker.ready, 180, worker)
        self._start_bridges(env)

    def _env(self, redis_url: str) -> dict[str, str]:
        """The workers' (and bridges') environment: one store, queue, secret, participants."""
        return {
            **os.environ,
            "GRIDBID_STORE_URL": self.store_url,
            "GRIDBID_MESSAGE_QUEUE": redis_url,
            "GRIDBID_SECRET_KEY": "shared-by-the-chaos-workers",
            "GRIDBID_SCRYPT_N": str(SCRYPT_N),
            "GRIDBID_DEMO_ACCOUNTS": "true",
            "GRIDBID_PARTICIPANTS": json.dumps(self.people),
            "GRIDBID_REMOTE_BOARDS": ",".join(p["board"] for p in self.people),
            "GRIDBID_EMULATOR_SPEED": str(self.layout.speed),
            "GRIDBID_SETTLE_WH": "1",  # settle every position at the next boundary
            "GRIDBID_WORKER_THREADS": "40",
            "GRIDBID_TICK_S": "0.2",
            "GRIDBID_EVENT_POLL_S": "0.3",
            "PYTHONUNBUFFERED": "1",
        }

    def _seat_admin(self) -> None:
        """The admin login, made before the first start (as an operator would), so the
        harness knows its passphrase; the workers find it and make none."""
        store = Keystore(self.data / "keystore", SCRYPT_N)
        AccountDirectory(self.data / "accounts.json").ensure(
            "admin", lambda: store.new(ADMIN_PASSPHRASE))

    def key(self, name: str, passphrase: str) -> LocalAccount:
        """An account's key, unlocked from its keystore in the data directory."""
        address = AccountDirectory(self.data / "accounts.json").address_of(name)
        if address is None:
            raise RuntimeError(f"no account {name} in {self.data}")
        keyfile = next((self.data / "keystore").glob(f"UTC--*--{address[2:].lower()}"))
        return keys.unlock(keyfile, passphrase)

    def urls(self) -> list[str]:
        """Every worker's URL, those answering first."""
        up = [w.url for w in self.workers if w.alive()]
        return up + [w.url for w in self.workers if w.url not in up]

    def _start_bridges(self, env: dict[str, str]) -> None:
        """Each bridge registered by the admin with its boards' meter keys, then started."""
        assert self.boards is not None
        admin = Client(self.workers[0].url, self.key("admin", ADMIN_PASSPHRASE))
        admin.login()
        groups = [self.people[i::self.layout.bridges] for i in range(self.layout.bridges)]
        for i, group in enumerate(g for g in groups if g):
            name = f"bridge-{i + 1}"
            home = self.out / name
            meters = MachineKeys(home / "meters", SCRYPT_N)
            boards = [{"board_id": p["board"], "meter": meters.get(p["board"]).address,
                       "time_factor": self.layout.speed} for p in group]
            token = admin.post("/api/admin/bridges", {"id": name, "boards": boards})["token"]
            (home / "token").write_text(token)
            portals = [w.url for w in self.workers]
            # One bridge per worker first; a bridge that can fail over gets all of them.
            portals = portals[i % len(portals):] + portals[:i % len(portals)]
            bridge = BridgePart(name, self.logs / f"{name}.log", env,
                                [self.boards.devices[p["board"]] for p in group], portals,
                                home / "token", home)
            self.bridges.append(bridge)
            self.parts.append(bridge)
            bridge.start()
        for bridge in self.bridges:
            _wait(bridge.name, bridge.ready, 60, bridge)
        _wait("every participant seated (meters enrolled)", self._seated, 90)

    def _seated(self) -> bool:
        """Whether the store has every participant with its meter (enrolled on chain)."""
        import psycopg

        wanted = {self.key_address(p["name"]).lower() for p in self.people}
        with psycopg.connect(self.store_url, connect_timeout=2) as db:
            rows = db.execute("SELECT address FROM participants WHERE meter_address IS NOT NULL"
                              ).fetchall()
        return wanted <= {r[0].lower() for r in rows}

    def key_address(self, name: str) -> str:
        """An account's address from the data directory's book."""
        address = AccountDirectory(self.data / "accounts.json").address_of(name)
        if address is None:
            raise RuntimeError(f"no account {name} in {self.data}")
        return address

    def by_kind(self) -> dict[str, list[Part]]:
        """The killable parts by kind (the boards are hardware: never killed)."""
        found: dict[str, list[Part]] = {}
        for part in self.parts:
            if part.kind != "boards":
                found.setdefault(part.kind, []).append(part)
        return found

    def stop(self) -> None:
        """Stop everything, the bridges first (they hold the boards), the services last."""
        order = [*self.bridges, *self.workers, self.boards, self.chain,
                 *[p for p in self.parts if isinstance(p, ServicePart)]]
        with ThreadPoolExecutor(4) as pool:
            for part in order[:len(self.bridges) + len(self.workers)]:
                pool.submit(_quiet_stop, part)
        for part in order[len(self.bridges) + len(self.workers):]:
            if part is not None:
                _quiet_stop(part)


def _quiet_stop(part: Part) -> None:
    try:
        part.stop()
    except Exception:  # noqa: BLE001 - the rest must stop too
        pass
