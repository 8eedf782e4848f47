"""The running portal: config, hub and accounts from the start; the parts start() wires."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from firmware_bridge.boards import BoardRouter
from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_boards import ALIVE_S, RemoteBoards, Transport
from geth_private import Keystore, TxManager
from geth_private.backend import ChainBackend
from marketplace import readouts
from marketplace.clock import SystemClock
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.market import Market
from marketplace.store import Store
from marketplace.wallet import Wallets
from web.runtime.accounts import AccountDirectory
from web.runtime.demo import DEMO_BOOK, demo_addresses
from web.runtime.local_bridge import KEEP_S
from web.runtime.loops import Loop
from web.runtime.meters import RETRY_S, MeterEnrollment
from web.runtime.settings import listed
from web.runtime.wiring import Parts, wire

log = logging.getLogger(__name__)

Spawn = Callable[..., Any]
TX_POLL_S = 0.2  # how often receipts are looked for
JOIN_TIMEOUT_S = 5.0  # how long stop() waits for each background loop to finish its pass

T = TypeVar("T")


class NotStarted(RuntimeError):
    """A part of the portal was asked for before Runtime.start() built it."""


def no_transport(peer: str, command: dict[str, Any], timeout: float) -> Any:
    """The transport of a runtime without a portal's Socket.IO: no remote bridge can be reached."""
    raise BridgeError("remote bridges reach this runtime only through a portal's /bridge channel")


def _thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class _Part(Generic[T]):
    """A Runtime attribute read from its wired parts, so there is one place each part lives."""

    def __init__(self, field: str = ""):
        self.field = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = self.field or name

    def __get__(self, runtime: Runtime | None, owner: type | None = None) -> T:
        if runtime is None:
            return self  # type: ignore[return-value]  # looked up on the class
        return getattr(runtime.parts, self.field)


class Runtime:
    """One portal: config, hub, clock and accounts at once; start() wires the rest."""

    backend: _Part[ChainBackend] = _Part()
    txm: _Part[TxManager] = _Part()
    ledger: _Part[Ledger] = _Part()
    store: _Part[Store] = _Part()
    microgrid: _Part[Microgrid] = _Part()
    bridge: _Part[Bridge] = _Part()
    remote_boards: _Part[RemoteBoards] = _Part()
    board_router: _Part[BoardRouter] = _Part("boards")
    market: _Part[Market] = _Part()
    wallets: _Part[Wallets] = _Part()
    meters: _Part[MeterEnrollment] = _Part()
    demo_accounts: _Part[list[dict[str, str]]] = _Part()
    admin_accounts: _Part[list[dict[str, str]]] = _Part()

    def __init__(self, config: Mapping[str, Any], transport: Transport = no_transport):
        self.config = config
        self.transport = transport  # how commands reach remote bridges
        self.hub = Hub()
        self.clock = config.get("CLOCK") or SystemClock()
        self.data_dir = Path(config["DATA_DIR"])
        self.keystore = Keystore(self.data_dir / "keystore", config["SCRYPT_N"])
        self.accounts = AccountDirectory(self.data_dir / "accounts.json",
                                         listed(config.get("ADMINS")))
        self._parts: Parts | None = None
        self._tasks: list[Any] = []
        self._loops: list[Loop] = []
        self._spawn: Spawn = _thread
        self._stop = threading.Event()

    @property
    def parts(self) -> Parts:
        """The wired parts; NotStarted before start()."""
        if self._parts is None:
            raise NotStarted("the portal's chain, boards and market are not started yet: "
                             "call start_runtime(app) (or Runtime.start()) first")
        return self._parts

    @property
    def started(self) -> bool:
        """Whether start() has wired the parts."""
        return self._parts is not None

    @property
    def stopping(self) -> bool:
        """Whether stop() was called (background loops end when it is)."""
        return self._stop.is_set()

    @property
    def loops(self) -> tuple[Loop, ...]:
        """The background loops started so far (e.g. for the simulation to time their passes)."""
        return tuple(self._loops)

    @property
    def chain_uri(self) -> str:
        """The URI of the chain the portal runs on (embedded:// after a fallback)."""
        return self.parts.backend.uri

    def start(self, spawn: Spawn = _thread) -> None:
        """Wire chain, contracts, boards and market, then start the background loops."""
        cfg = self.config
        parts = self._parts = wire(cfg, hub=self.hub, clock=self.clock, keystore=self.keystore,
                                   accounts=self.accounts, transport=self.transport)
        self._spawn = spawn
        self.loop("transactions", parts.txm.poll, TX_POLL_S)
        # Auctions, settlement, switching and minting each on a loop of their own: a slow
        # chain delays settlement, never an auction's close nor a relay a request switched.
        market = parts.market
        self.loop("auctions", market.close_auctions, cfg["TICK_S"])
        # A clean stop hands settlement to another worker at once.
        settling = self.loop("settlement", market.settle, cfg["TICK_S"], after=market.close)
        market.on_sold = settling.wake.set
        switching = self.loop("switchboard", market.switchboard.carry_out, cfg["TICK_S"])
        market.switchboard.wake = switching.wake.set
        self.loop("metering", market.mint, cfg["TICK_S"])
        self.loop("events", parts.events.poll_once, cfg["EVENT_POLL_S"], after=parts.events.close)
        # The kept funds bids and listings check (marketplace.funds): every worker follows the
        # contracts' logs itself, at the events' pace; learn() wakes it.
        funds = market.auctions.funds
        funds.wake = self.loop("funds", funds.step, cfg["EVENT_POLL_S"]).wake.set
        self.loop("intervals", parts.market.intervals.step, cfg["INTERVAL_TICK_S"])
        # Every worker hears, again and again, which bridges are connected here.
        self.loop("bridge claims", parts.remote_boards.refresh, ALIVE_S)
        # A demo owner's consent whose enrollment was refused or failed is sent again.
        self.loop("enrollment", parts.meters.retry, RETRY_S)
        if parts.local_bridge is not None:  # one worker of those sharing the store runs it
            keeper = self.loop("local bridge", parts.local_bridge.step, KEEP_S)
            keeper.wake.set()  # its first pass now: the child is started without a wait

    def loop(
        self, name: str, step: Callable[[], object], interval_s: float, **options: Any
    ) -> Loop:
        """Run step every interval_s as a background task until stop() (see Loop)."""
        loop = Loop(name, step, interval_s, self._stop, **options)
        self._loops.append(loop)
        self._tasks.append(self._spawn(loop.run))
        return loop

    def stop(self) -> None:
        """Stop the loops and release boards, ptys and the chain."""
        self._stop.set()
        for loop in self._loops:
            loop.wake.set()
        if self._parts is None:
            return
        # The loops finish their pass first, so none writes to a store that is closed.
        for task in self._tasks:
            if hasattr(task, "join"):
                task.join(timeout=JOIN_TIMEOUT_S)
        self._parts.close()

    def resolve(self, who: str) -> str:
        """The address of a name (demo or created by the admin) or of an address as typed."""
        return self.accounts.resolve(who)

    def name_of(self, address: str) -> str | None:
        """The name an address was created under, if any."""
        return self.accounts.name_of(address)

    def is_admin(self, address: str) -> bool:
        """Whether the account may use the admin page (config ADMINS: names or addresses)."""
        return self.accounts.is_admin(address)

    def is_demo(self, address: str) -> bool:
        """Whether an account is one the demo seats (its passphrase is published), whether or
        not DEMO_ACCOUNTS seated it on this run: a data directory keeps them."""
        return address.lower() in demo_addresses(self.data_dir / DEMO_BOOK)

    def boards(self) -> list[dict[str, Any]]:
        """Each participant's board as its last reading shows it (None where none came yet).

        A value a board got wrong is shown as unknown and logged (marketplace.readouts); a
        board that cannot be asked at all is shown offline: never an error for the whole list.
        """
        router = self.board_router
        states = []
        for p in self.store.participants():
            if not p["board_id"]:
                continue
            try:
                reading = router.reading(p["board_id"])
                online = reading is not None and router.online(p["board_id"])
            except Exception:  # a broken board must not take the others' rows with it
                log.exception("board %s cannot be read for display", p["board_id"])
                reading, online = None, False
            states.append({"board_id": p["board_id"], "owner": p["name"], "role": p["role"],
                           "online": online, **readouts.board(reading, p["board_id"])})
        return states
