"""Chain news for the hub: every transaction's status journaled, contract events announced.

Contract events are read through the `events` cursor (marketplace.chainlog: one durable
eth_getLogs cursor, moved by compare-and-set, rewound when the chain goes back). On a store
several workers share, only the holder of the `announce` lease reads and announces them, so
the cursor is one worker's and an event is announced once; the cursor is committed before the
events are published (no store lock held across a Socket.IO emit), so a worker dying between
the two loses that pass's announcements rather than repeating them.
"""

from __future__ import annotations

import logging
from typing import Any

from geth_private import TxRecord
from marketplace.chain_store import ChainStore
from marketplace.chainlog import LogCursor, Pass
from marketplace.events import Hub
from marketplace.lease import Lease
from marketplace.ledger import Ledger
from marketplace.store import Store

log = logging.getLogger(__name__)

CURSOR = "events"  # the store's cursor name for the next block to read
ANNOUNCE = "announce"  # the lease of the worker that announces contract events


class TransactionJournal:
    """Keeps every transaction's status in the store, then announces it on the hub."""

    def __init__(self, store: Store, hub: Hub):
        self.store = store
        self.hub = hub

    def __call__(self, record: TxRecord) -> None:
        """A transaction manager's news about one transaction."""
        data = record.public()
        self.store.save_transaction(data)
        self.hub.publish("tx", data)


class EventWatcher:
    """Reads the contracts' events through the durable `events` cursor and announces them on
    the hub; on a shared store only while this worker holds the announce lease."""

    def __init__(self, ledger: Ledger, store: Store, hub: Hub, lease_s: float = 5.0):
        self.ledger = ledger
        self.store = store
        self.hub = hub
        self.lease = Lease(store, ANNOUNCE, lease_s)
        self._cursor: LogCursor | None = None  # made once the contracts are known

    def cursor(self) -> LogCursor:
        """The announce role's cursor over both contracts' logs."""
        addresses = [self.ledger.token.address, self.ledger.escrow.address]
        if self._cursor is None or self._cursor.addresses != addresses:
            self._cursor = LogCursor(ChainStore(self.store), CURSOR, self.ledger.w3, addresses)
        return self._cursor

    def poll_once(self) -> None:
        """Announce the events of the blocks mined since the last pass; move the cursor on."""
        if not self.lease.renew():
            return
        cursor = self.cursor()
        found = cursor.read()
        cursor.commit(found, lambda _: None)  # committed first: then announced, outside it
        self._announce(found)

    def close(self) -> None:
        """Hand the announce role to another worker at once (a clean stop)."""
        self.lease.release()

    def _announce(self, found: Pass) -> None:
        for raw in found.logs:
            decoded = self.ledger.decode(raw)
            if decoded is None:
                continue
            name, args = decoded
            self.hub.publish(
                "chain_event",
                {"event": name, "args": {k: _plain(v) for k, v in args.items()},
                 "block": raw["blockNumber"], "tx": raw["transactionHash"].to_0x_hex()},
            )


def _plain(value: Any) -> Any:
    """An event argument as JSON carries it (big integers as text, bytes as hex)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
