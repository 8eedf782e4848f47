"""Chain news for the hub: every transaction's status journaled, contract events announced."""

from __future__ import annotations

import logging
from typing import Any

from geth_private import TxRecord
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.store import Store

log = logging.getLogger(__name__)

CURSOR = "events"  # the store's cursor name for the next block to read


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
    """Reads the contracts' events by polling logs and announces them on the hub."""

    def __init__(self, ledger: Ledger, store: Store, hub: Hub):
        self.ledger = ledger
        self.store = store
        self.hub = hub
        # The cursor is kept in the store, so a restart goes on where the last run stopped.
        self.poller = ledger.log_poller(store.cursor(CURSOR) or 0)

    def poll_once(self) -> None:
        """Announce the events of the blocks mined since the last pass; move the cursor on."""
        for raw in self.poller.poll():
            decoded = self.ledger.decode(raw)
            if decoded is None:
                continue
            name, args = decoded
            self.hub.publish(
                "chain_event",
                {"event": name, "args": {k: _plain(v) for k, v in args.items()},
                 "block": raw["blockNumber"], "tx": raw["transactionHash"].to_0x_hex()},
            )
        self.store.set_cursor(CURSOR, self.poller.cursor)


def _plain(value: Any) -> Any:
    """An event argument as JSON carries it (big integers as text, bytes as hex)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
