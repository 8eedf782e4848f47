"""One role's durable eth_getLogs cursor: read the new blocks' logs once, apply, move on.

A pass costs the same few calls whatever the number of deals: the head block, the block the
cursor stopped after (only when more than one block came), and one eth_getLogs per
MAX_RANGE blocks. The cursor (a row of the store's cursors table, marketplace.chain_store)
moves in the transaction that applied the logs, by compare-and-set, so a restart reads on
where the last committed pass stopped and two workers never both apply the same blocks.

A chain that went back (anvil restarted from an older state dump, a reorg) is noticed by the
head falling below the cursor, or by the block before the cursor having another hash now;
the cursor then rewinds to the head and the caller re-checks what the chain may have forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketplace.chain_store import ChainStore

log = logging.getLogger(__name__)

MAX_RANGE = 2000  # blocks per eth_getLogs (nodes cap a range; anvil and geth take this)
MAX_RANGES = 5  # eth_getLogs calls a pass makes at most: catching up spreads over passes


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


@dataclass
class Pass:
    """What one read found: logs of blocks [start, end], or a rewind to head."""

    seen: tuple[int, str | None] | None  # the cursor as read (compare-and-set on commit)
    head: int
    start: int
    end: int  # last block read (start - 1: nothing new)
    end_hash: str | None
    rewound: bool = False
    logs: list[dict[str, Any]] = field(default_factory=list)


class LogCursor:
    """The cursor called name over some addresses' logs with some first topics."""

    def __init__(
        self, chain: ChainStore, name: str, w3: Any, addresses: list[str],
        topics: list[str] | None = None, start: int | None = 0,
    ):
        self.chain = chain
        self.name = name
        self.w3 = w3
        self.addresses = list(addresses)
        self.topics = topics
        self.first = start  # where a cursor that never read starts (None: at the head)

    def read(self) -> Pass:
        """The logs since the cursor (nothing stored yet: see commit), or the rewind found."""
        seen = self.chain.cursor(self.name)
        head = self.w3.eth.get_block("latest")
        number, head_hash = int(head["number"]), _hex(head["hash"])
        first = number if self.first is None else self.first
        start = first if seen is None else seen[0]
        if seen is not None and self._went_back(seen, head):
            log.warning("chain went back: cursor %s was at block %s, the head is %s (%s);"
                        " rewinding to the head", self.name, start, number, head_hash)
            return Pass(seen, number, number + 1, number, head_hash, rewound=True)
        end = min(number, start + MAX_RANGE * MAX_RANGES - 1)
        found = Pass(seen, number, start, end, head_hash if end == number else None)
        for low in range(start, end + 1, MAX_RANGE):
            query: dict[str, Any] = {"fromBlock": low, "toBlock": min(end, low + MAX_RANGE - 1),
                                     "address": self.addresses}
            if self.topics:
                query["topics"] = [self.topics]
            found.logs.extend(self.w3.eth.get_logs(query))
        if end >= start and found.end_hash is None:  # catching up: remember the block's hash
            found.end_hash = _hex(self.w3.eth.get_block(end)["hash"])
        return found

    def _went_back(self, seen: tuple[int, str | None], head: Any) -> bool:
        """Whether the block before the cursor is no longer the one read there."""
        start, last_hash = seen
        number = int(head["number"])
        if number < start - 1:
            return True
        if last_hash is None or start == 0:
            return False
        if number == start - 1:
            known = _hex(head["hash"])
        elif number == start:
            known = _hex(head["parentHash"])
        else:
            known = _hex(self.w3.eth.get_block(start - 1)["hash"])
        return known != last_hash

    def commit(self, found: Pass, apply: Callable[[Pass], None]) -> None:
        """Apply a pass's logs and move the cursor past them in one store transaction."""
        if found.end < found.start and not found.rewound and found.seen is not None:
            return  # nothing new and nothing to move
        with self.chain.db.transaction():
            apply(found)
            self.chain.advance(self.name, found.seen, found.end + 1, found.end_hash)
