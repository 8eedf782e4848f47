"""The running portal's parts wired together: chain, contracts, boards, bridge, market."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from firmware_bridge.boards import BoardRouter
from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.remote_boards import RemoteBoards
from geth_private import Keystore, TxManager, backend_from_uri
from geth_private.backend import PERSISTENT, ChainBackend
from geth_private.cli import running_node
from geth_private.errors import ChainUnavailable, KeystoreError
from geth_private.keystore import MachineKeys
from geth_private.signer import Signer
from marketplace.clock import SystemClock
from marketplace.errors import InvalidInput
from marketplace.events import Hub
from marketplace.ledger import CONSUMER, PRODUCER, Ledger
from marketplace.market import Market, Settings
from marketplace.rules import Limits, parse_address
from marketplace.store import Store
from marketplace.wallet import Wallets
from web.bridges import send_command
from web.keyring import KeyRing

log = logging.getLogger(__name__)

ETHER = 10**18

# The seed demo: one producer with a PV emulator and battery, two consumers with loads.
DEMO = [
    {"name": "alice", "role": "producer", "passphrase": "alice-demo", "board": "pv-alice"},
    {"name": "bob", "role": "consumer", "passphrase": "bob-demo", "board": "load-bob"},
    {"name": "carol", "role": "consumer", "passphrase": "carol-demo", "board": "load-carol"},
]
# The operator's login for the admin page: an account of its own, not a market participant.
DEMO_ADMIN = {"name": "admin", "role": "admin", "passphrase": "admin-demo"}

Spawn = Callable[..., Any]
JOIN_TIMEOUT_S = 5.0  # how long stop() waits for each background loop to finish its pass


def _thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class Runtime:
    """Owns every long-lived part of one portal; start() brings them up, stop() down."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self.hub = Hub()
        self.keyring = KeyRing()
        self.clock = config.get("CLOCK") or SystemClock()
        self.data_dir = Path(config["DATA_DIR"])
        self.keystore = Keystore(self.data_dir / "keystore", config["SCRYPT_N"])
        self.demo_accounts: list[dict[str, str]] = []
        self.admin_accounts: list[dict[str, str]] = []
        self.started = False
        self._tasks: list[Any] = []
        self._stop = threading.Event()

    def start(self, spawn: Spawn = _thread) -> None:
        """Bring up chain, contracts, boards and market, then the background loops."""
        cfg = self.config
        self.backend = self._start_chain(cfg["CHAIN_URI"])
        self.txm = TxManager(self.backend)
        self.ledger = Ledger(self.txm, self.backend.faucet())
        self.store = Store(self._store_path())
        with self.store.exclusive("startup"):  # workers sharing a store deploy one at a time
            self._deploy_or_attach()
        self.microgrid = Microgrid(
            speed=cfg["EMULATOR_SPEED"], start_hour=cfg["EMULATOR_START_HOUR"], seed=1
        )
        self.bridge = Bridge(heartbeat_s=1.0)
        # Boards a bridge on another machine serves (`gridbid bridge`); the rest are local.
        self.remote_boards = RemoteBoards(set(self._remote_ids()), send_command)
        self.remote_boards.subscribe(self._adopt_remote_board)
        self.grid = BoardRouter(self.bridge, self.remote_boards)
        self.market = Market(
            self.store, self.ledger, self.grid, self.clock, self.hub,
            Settings(
                step_wh=cfg["STEP_WH"], mint_batch_wh=cfg["MINT_BATCH_WH"],
                deal_ttl_s=cfg["DEAL_TTL_S"],
                limits=Limits(
                    min_increment_wei=cfg["BID_MIN_INCREMENT_WEI"],
                    min_increment_pct=cfg["BID_MIN_INCREMENT_PCT"],
                    soft_close_s=cfg["SOFT_CLOSE_S"],
                    soft_close_cap_s=cfg["SOFT_CLOSE_CAP_S"],
                ),
            ),
        )
        self.wallets = Wallets(self.market)
        if cfg["DEMO"]:
            with self.store.exclusive("startup"):  # … and create and fund accounts one at a time
                self._start_demo()
        self.txm.subscribe(self._on_transaction)
        self.started = True
        self._tasks = [
            spawn(self.txm.run, self._stop),
            spawn(self.market.run, self._stop, cfg["TICK_S"]),
            spawn(self._watch_events),
        ]

    @property
    def stopping(self) -> bool:
        """Whether stop() was called (background loops end when it is)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop the loops and release boards, ptys and the chain."""
        self._stop.set()
        if not self.started:
            return
        # The loops finish their pass first, so none writes to a store that is closed.
        for task in self._tasks:
            if hasattr(task, "join"):
                task.join(timeout=JOIN_TIMEOUT_S)
        self.bridge.close()
        self.microgrid.stop()
        self.store.close()
        self.backend.stop()

    def login(self, who: str, passphrase: str) -> tuple[str, LocalAccount]:
        """Unlock a participant's or admin's keystore by address or name; (token, account)."""
        address = self.resolve(who)
        if not self.store.participant(address) and not self.is_admin(address):
            raise KeystoreError(f"{address} is not a participant of this market")
        account = self.keystore.unlock(address, passphrase)
        return self.keyring.add(account), account

    def boards(self) -> list[dict[str, Any]]:
        """Each participant's board as its last reading shows it (None where none came yet)."""
        states = []
        for p in self.store.participants():
            if not p["board_id"]:
                continue
            reading = self.grid.reading(p["board_id"])
            states.append({
                "board_id": p["board_id"], "owner": p["name"], "role": p["role"],
                "online": reading is not None and self.grid.online(p["board_id"]),
                "relays": list(reading.relays) if reading else [],
                "budgets": list(reading.budgets) if reading else [],
                "power_w": round(reading.power_w, 1) if reading else None,
                "pv_w": round(reading.pv_w, 1) if reading and reading.pv_w is not None else None,
                "soc": round(reading.soc, 4) if reading and reading.soc is not None else None,
            })
        return states

    def resolve(self, who: str) -> str:
        """The address of a name (demo or created by the admin) or of an address as typed."""
        return self._names().get(who) or parse_address(who)

    def name_of(self, address: str) -> str | None:
        """The name an address was created under, if any."""
        return next((n for n, a in self._names().items() if a == address), None)

    def is_admin(self, address: str) -> bool:
        """Whether the account may use the admin page (config ADMINS: names or addresses)."""
        admins = self.config.get("ADMINS") or ""
        if isinstance(admins, str):
            admins = [a.strip() for a in admins.split(",") if a.strip()]
        names = self._names()
        return any(names.get(a, a).lower() == address.lower() for a in admins)

    def create_account(self, name: str, role: str, passphrase: str) -> str:
        """A new participant without a board yet: keystore, name and market entry."""
        names = self._names()
        if name in names:
            raise InvalidInput(f"the name {name!r} is taken")
        address = self.keystore.new(passphrase)
        names[name] = address
        self._save_names(names)
        self.market.add_participant(name, address, role, None, None)
        return address

    # -- internals -------------------------------------------------------------------------

    def _on_transaction(self, record: Any) -> None:
        """Journal every transaction's status in the store, then announce it."""
        data = record.public()
        self.store.save_transaction(data)
        self.hub.publish("tx", data)

    def _start_chain(self, uri: str) -> ChainBackend:
        """Start the configured chain; without an anvil binary, fall back to embedded."""
        running = running_node(self.data_dir) if uri.startswith("anvil:") else None
        if running:
            # `gridbid chain start` already runs this data directory's node: share it.
            uri = running
        backend = backend_from_uri(uri, str(self.data_dir))
        try:
            backend.start()
        except ChainUnavailable as err:
            if not uri.startswith("anvil:") or not self.config.get("CHAIN_FALLBACK", True):
                raise
            log.warning("%s; falling back to the embedded chain (memory only)", err)
            backend = backend_from_uri("embedded://")
            backend.start()
        self.chain_uri = backend.uri
        return backend

    def _deploy_or_attach(self) -> None:
        """Reuse the contracts of the address book when this chain still has them."""
        book = self.data_dir / "contracts.json"
        chain_id = self.ledger.chain_id()
        if self.backend.has(PERSISTENT) and book.exists():
            saved = json.loads(book.read_text())
            if saved.get("chain_id") == chain_id and self.ledger.deployed_at(saved):
                self.ledger.attach(saved)
                log.info("using the contracts deployed before: %s", saved)
                return
        addresses = self.ledger.deploy()
        if self.backend.has(PERSISTENT):
            book.parent.mkdir(parents=True, exist_ok=True)
            book.write_text(json.dumps({"chain_id": chain_id, **addresses}, indent=1))

    def _store_path(self) -> Path | str:
        if self.config.get("STORE_URL"):  # e.g. postgresql://…: shared by several workers
            return self.config["STORE_URL"]
        if self.config.get("STORE_PATH"):
            return Path(self.config["STORE_PATH"])
        path = self.data_dir / "market.sqlite"
        if not self.backend.has(PERSISTENT):
            # The chain forgets everything on restart, so the market starts afresh with it.
            for stale in self.data_dir.glob("market.sqlite*"):
                stale.unlink()
        return path

    def _names(self) -> dict[str, str]:
        path = self.data_dir / "accounts.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_names(self, names: dict[str, str]) -> None:
        path = self.data_dir / "accounts.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(names, indent=1, sort_keys=True))

    def _meter_key(self, board_id: str) -> LocalAccount:
        """The meter account of a board on this machine, created on first use."""
        return MachineKeys(self.data_dir / "meters", self.config["SCRYPT_N"]).get(board_id)

    def _remote_ids(self) -> list[str]:
        value = self.config.get("REMOTE_BOARDS") or []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return list(value)

    def _adopt_remote_board(self, board_id: str, kind: str, meter: Signer) -> None:
        """A remote bridge announced a board: enroll its meter for the participant it measures."""
        spec = next((d for d in self._participants() if d["board"] == board_id), None)
        if spec is None or spec["role"] != kind:
            log.error("remote board %s (%s) matches no participant", board_id, kind)
            return
        address = self._names()[spec["name"]]
        self._enroll(spec, address, meter.address)
        self.market.add_participant(spec["name"], address, spec["role"], board_id, meter)
        log.info("remote board %s of %s is online, meter %s", board_id, spec["name"],
                 meter.address)

    def _enroll(self, spec: dict[str, Any], address: str, meter: str) -> None:
        """Fund a meter account for gas and enroll it for its owner, unless it already is."""
        cfg = self.config
        if self.ledger.eth_balance(meter) < ETHER:
            self.ledger.fund(meter, 10 * ETHER)
        kind = PRODUCER if spec["role"] == "producer" else CONSUMER
        # Emulated time runs EMULATOR_SPEED times faster than chain time, and PV noise
        # can top the peak: the rating in chain time carries both.
        rated = (spec.get("pv_peak_w", cfg["PV_PEAK_W"]) if kind == PRODUCER
                 else spec.get("load_w", cfg["LOAD_W"]))
        rated = int(rated * cfg["EMULATOR_SPEED"] * 1.25)
        entry = self.ledger.meter_of(meter)
        if (entry["owner"], entry["kind"], entry["rated_power_w"]) != (address, kind, rated):
            self.ledger.enroll_meter(meter, address, kind, rated)

    def _participants(self) -> list[dict[str, Any]]:
        """Who takes part: config PARTICIPANTS (specs like DEMO's, optionally with pv_peak_w,
        sky, load_w and a load profile each), else the seed demo's three."""
        return list(self.config.get("PARTICIPANTS") or DEMO)

    def _start_demo(self) -> None:
        cfg = self.config
        remote = set(self._remote_ids())
        for spec in self._participants():
            if spec["board"] in remote:
                continue  # its bridge announces it from another machine
            if spec["role"] == "producer":
                self.microgrid.add_producer(
                    spec["board"], pv_peak_w=spec.get("pv_peak_w", cfg["PV_PEAK_W"]),
                    sky=spec.get("sky", cfg["EMULATOR_SKY"]),
                )
            else:
                self.microgrid.add_consumer(spec["board"], load_w=spec.get("load_w", cfg["LOAD_W"]),
                                            profile=spec.get("profile"))
        # Stable paths per board (as udev's /dev/serial/by-id), so an unplugged board that is
        # plugged back in is found again by the bridge.
        for device in self.microgrid.start(link_dir=self.data_dir / "boards").values():
            self.bridge.attach(device)
        names = self._names()
        for spec in self._participants():
            if spec["name"] not in names:
                names[spec["name"]] = self.keystore.new(spec["passphrase"])
                self._save_names(names)
            address = names[spec["name"]]
            # On a persistent chain the accounts keep what they had: top up, never pile up.
            if self.ledger.eth_balance(address) < cfg["DEMO_FUNDS_ETH"] * ETHER // 2:
                self.ledger.fund(address, cfg["DEMO_FUNDS_ETH"] * ETHER)
            if spec["board"] not in remote:
                meter = self._meter_key(spec["board"])
                self._enroll(spec, address, meter.address)
                self.market.add_participant(
                    spec["name"], address, spec["role"], spec["board"], meter
                )
            self.demo_accounts.append(
                {"name": spec["name"], "address": address, "role": spec["role"],
                 "passphrase": spec["passphrase"], "board": spec["board"]}
            )
        if DEMO_ADMIN["name"] not in names:
            names[DEMO_ADMIN["name"]] = self.keystore.new(DEMO_ADMIN["passphrase"])
            self._save_names(names)
        self.admin_accounts.append({**DEMO_ADMIN, "address": names[DEMO_ADMIN["name"]]})

    def _watch_events(self) -> None:
        """Read contract events by polling logs and announce them on the hub."""
        # The cursor is kept in the store, so a restart goes on where the last run stopped.
        poller = self.ledger.log_poller(self.store.cursor("events") or 0)
        while not self._stop.wait(self.config["EVENT_POLL_S"]):
            try:
                for raw in poller.poll():
                    decoded = self.ledger.decode(raw)
                    if decoded is None:
                        continue
                    name, args = decoded
                    self.hub.publish(
                        "chain_event",
                        {"event": name, "args": {k: _plain(v) for k, v in args.items()},
                         "block": raw["blockNumber"], "tx": raw["transactionHash"].to_0x_hex()},
                    )
                self.store.set_cursor("events", poller.cursor)
            except Exception:  # the node may hiccup; the cursor keeps our place
                log.exception("event polling failed")


def _plain(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
