"""The portal's parts built in order, each whole, from its config: chain to market."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from firmware_bridge.board_bus import bus_for, bus_key
from firmware_bridge.boards import BoardRouter
from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.remote_boards import RemoteBoards, Transport
from geth_private import Keystore, TxManager
from geth_private.backend import PERSISTENT, ChainBackend
from geth_private.keystore import MachineKeys
from marketplace.clock import Clock
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.machine_nodes import MachineNodes
from marketplace.market import Market
from marketplace.store import Store
from marketplace.wallet import Wallets
from web.runtime.accounts import AccountDirectory
from web.runtime.chain import deploy_or_attach, start_chain
from web.runtime.demo import DEMO_BOOK, participants, seed_accounts, start_emulated_boards
from web.runtime.events import EventWatcher, TransactionJournal
from web.runtime.local_bridge import (
    LOCAL_ID,
    LocalBridgeKeeper,
    board_uris,
    mode,
    register_local,
)
from web.runtime.meters import MeterEnrollment
from web.runtime.operator import admin_accounts, fund_operator, operator_account
from web.runtime.settings import interval_wall_s, listed, market_settings
from web.runtime.storage import forget_market, is_default, store_location


@dataclass(frozen=True)
class Parts:
    """Every long-lived part of a started portal."""

    backend: ChainBackend
    txm: TxManager
    ledger: Ledger
    store: Store
    microgrid: Microgrid
    bridge: Bridge  # this machine's boards
    remote_boards: RemoteBoards  # boards that bridges on other machines serve
    boards: BoardRouter  # both as one, for the market
    market: Market
    wallets: Wallets
    meters: MeterEnrollment
    events: EventWatcher
    demo_accounts: list[dict[str, str]]
    admin_accounts: list[dict[str, Any]]  # the passphrase on the first run only, else None
    # LOCAL_BRIDGE=process: the child serving ours, run by one worker of those sharing a store
    local_bridge: LocalBridgeKeeper | None = None

    def close(self) -> None:
        """Release boards, ptys, the store and the chain (once the loops have stopped)."""
        if self.local_bridge is not None:
            self.local_bridge.close()
        self.bridge.close()
        self.remote_boards.bus.close()
        self.microgrid.stop()
        self.store.close()
        self.backend.stop()


def wire(
    config: Mapping[str, Any], *, hub: Hub, clock: Clock, keystore: Keystore,
    accounts: AccountDirectory, transport: Transport,
) -> Parts:
    """Start the chain, open the store, unlock the operator and deploy, attach boards, seat the
    demo (when DEMO_ACCOUNTS asks); undone on failure."""
    data_dir = Path(config["DATA_DIR"])
    with ExitStack() as undo:
        backend = start_chain(config["CHAIN_URI"], data_dir, config.get("CHAIN_FALLBACK", True))
        undo.callback(backend.stop)
        txm = TxManager(backend)
        store = _open_store(config, data_dir, backend)
        undo.callback(store.close)
        settings = market_settings(config)
        with store.exclusive("startup"):  # workers sharing a store make keys and deploy in turn
            # The faucet only funds: the operator is a key of this portal's own, never a
            # published dev key, and it deploys the contracts, so it alone holds their roles.
            operator = operator_account(keystore, data_dir, config.get("OPERATOR_PASSPHRASE"))
            ledger = Ledger(txm, operator)
            fund_operator(ledger, config["OPERATOR_FUNDS_ETH"])
            deploy_or_attach(ledger, backend, data_dir / "contracts.json",
                             settings.escrow_notice_s(), settings.deal_ttl_s,
                             config["MAX_RATED_POWER_W"], interval_s=settings.interval_s,
                             interval_wall_s=interval_wall_s(config, settings),
                             max_line_loss_bps=settings.max_line_loss_bps())
            admins = admin_accounts(keystore, accounts, listed(config.get("ADMINS")))
        # EMULATOR_STEPPED: a driver (gridbid simulate) steps the physics itself, from the seed.
        microgrid = Microgrid(
            speed=config["EMULATOR_SPEED"], start_hour=config["EMULATOR_START_HOUR"],
            seed=config.get("EMULATOR_SEED", 1), stepped=config.get("EMULATOR_STEPPED", False),
            step_s=config.get("EMULATOR_STEP_S"),
        )
        undo.callback(microgrid.stop)
        # This machine's boards' meter keys live here, with the bridge that signs their readings.
        meter_keys = MachineKeys(data_dir / "meters", config["SCRYPT_N"])
        bridge = Bridge(heartbeat_s=1.0, meter_keys=meter_keys.get,
                        odometer_dir=data_dir / "odometer")
        undo.callback(bridge.close)
        domain = ledger.reading_domain()  # deployed (or attached) above
        bridge.set_reading_domain(domain)
        # Boards a bridge on another machine serves (`gridbid bridge`): those the config
        # names, and those of people the admin seated; the rest are local.
        local = {spec["board"] for spec in participants(config)}
        seated = [p["board_id"] for p in store.participants()
                  if p["board_id"] and p["board_id"] not in local]
        own = _own_boards(config, store, data_dir, meter_keys)  # registered, served by a child
        registered = [b["board_id"] for row in store.bridges() for b in row["boards"]]
        # With a message queue, what a bridge tells one worker reaches every worker, signed
        # under a key derived from the SECRET_KEY they share (threats 73-74).
        queue = config.get("MESSAGE_QUEUE")  # no queue: one process, a LocalBus, no key
        bus = bus_for(queue, bus_key(config["SECRET_KEY"]) if queue else None)
        undo.callback(bus.close)
        remote_boards = RemoteBoards(
            listed(config.get("REMOTE_BOARDS")) + seated + registered, transport, bus=bus
        )
        remote_boards.set_reading_domain(domain)
        boards = BoardRouter(bridge, remote_boards)
        market = Market(store, ledger, boards, clock, hub, settings)
        specs = participants(config)
        meters = MeterEnrollment(ledger, market, accounts, specs, config, meter_keys,
                                 remote_boards, bridge.boards)
        remote_boards.subscribe(meters.adopt_remote)
        remote_boards.subscribe_claims(meters.seat_claimed)  # on every worker
        txm.subscribe(meters.on_transaction)
        demo: list[dict[str, str]] = []
        if config["DEMO_ACCOUNTS"]:
            with store.exclusive("startup"):  # … and create and fund accounts one at a time
                start_emulated_boards(microgrid, bridge, specs, config, data_dir / "boards",
                                      remote_boards.allowed)
                # The local bridge's boards are enrolled and seated now, as inline ones are
                # (their keys are here): the portal serves seated, before the child connects.
                mine = set(own.ids) if own is not None else set()
                demo = seed_accounts(specs, keystore=keystore, accounts=accounts, ledger=ledger,
                                     meters=meters, funds_eth=config["DEMO_FUNDS_ETH"],
                                     remote=remote_boards.allowed - mine,
                                     book=data_dir / DEMO_BOOK)
        txm.subscribe(TransactionJournal(store, hub))
        keeper = None
        if own is not None:  # its child is started by the runtime's loop (Runtime.start)
            keeper = LocalBridgeKeeper(store, own.uris, config["LOCAL_BRIDGE_PORTAL"],
                                       own.token_file, data_dir, settings.lease_s)
            undo.callback(keeper.close)
        parts = Parts(
            backend=backend, txm=txm, ledger=ledger, store=store, microgrid=microgrid,
            bridge=bridge, remote_boards=remote_boards, boards=boards, market=market,
            wallets=Wallets(market, MachineNodes(store, remote_boards.nodes)),
            meters=meters, events=EventWatcher(ledger, store, hub),
            demo_accounts=demo, admin_accounts=admins, local_bridge=keeper,
        )
        undo.pop_all()  # all built: from now on Parts.close() releases them
    return parts


class _OwnBoards(NamedTuple):
    """This machine's emulated boards as the local bridge child serves them."""

    uris: list[str]
    token_file: Path
    ids: list[str]


def _own_boards(
    config: Mapping[str, Any], store: Store, data_dir: Path, keys: MachineKeys
) -> _OwnBoards | None:
    """LOCAL_BRIDGE=process and the demo on: register this machine's emulated boards (the
    participants no other bridge serves) as the local bridge's. Else None."""
    if mode(config) != "process" or not config["DEMO_ACCOUNTS"]:
        return None  # emulated boards are the demo's
    others = set(listed(config.get("REMOTE_BOARDS")))
    others |= {b["board_id"] for row in store.bridges() if row["id"] != LOCAL_ID
               for b in row["boards"]}
    specs = [s for s in participants(config) if s["board"] not in others]
    if not specs:
        return None
    with store.exclusive("startup"):
        token_file = register_local(store, data_dir, keys, specs, config["EMULATOR_SPEED"])
    return _OwnBoards(board_uris(specs, config), token_file, [s["board"] for s in specs])


def _open_store(config: Mapping[str, Any], data_dir: Path, backend: ChainBackend) -> Store:
    """The market's store; the data directory's starts afresh when the chain forgets on restart."""
    # A store named in the config is the operator's to keep, whatever the chain forgets.
    if is_default(config) and not backend.has(PERSISTENT):
        forget_market(data_dir)
    return Store(store_location(config, data_dir))
