"""The escrow's deals as its events tell them: the settlement's view of the chain.

The settlement lease holder reads EnergyEscrow's DealOpened, DeliveryStarted,
DeliveryReported and DealClosed logs once a pass through the `settlement` cursor and keeps
each deal's record in the store (chain_deals), in the same transaction that moves the cursor.
A pass's chain reads are then the same few calls for 10 deals or 1,000; a deal is read from
the escrow itself (getDeal) only when the mirror does not have it yet (its DealOpened lies
before the cursor began, or in a block the cursor has not reached) and after a rewind.
"""

from __future__ import annotations

import logging
from typing import Any

from marketplace.chain_store import ChainStore
from marketplace.chainlog import LogCursor, Pass
from marketplace.contract_enums import DealStatus
from marketplace.database import Database
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)

ROLE = "settlement"  # the cursor's name: the settlement lease's holder advances it
EVENTS = ("DealOpened", "DeliveryStarted", "DeliveryReported", "DealClosed")


class ChainDeals:
    """Follows the escrow's deal events into the store; answers getDeal from there."""

    def __init__(self, db: Database, ledger: Ledger):
        self.mirror = ChainStore(db)
        self.ledger = ledger
        self._cursor: LogCursor | None = None  # made once the escrow is known
        self._duration: int | None = None  # the escrow's dealDuration (fixed at deploy)
        self.rewound: list[int] = []  # chain deal ids the last pass re-read after a rewind

    def cursor(self) -> LogCursor:
        """The settlement's cursor over the escrow's deal events."""
        escrow = self.ledger.escrow
        if self._cursor is None or self._cursor.addresses != [escrow.address]:
            topics = [e.topic for e in escrow.all_events() if e.event_name in EVENTS]
            # A first run starts at the head: deals opened before are read once when asked for.
            self._cursor = LogCursor(self.mirror, ROLE, self.ledger.w3, [escrow.address], topics,
                                     start=None)
        return self._cursor

    def follow(self) -> Pass:
        """One pass: the new blocks' deal events applied and the cursor moved with them; after
        a rewind, the deals an event after the head had changed are read again (rewound)."""
        cursor = self.cursor()
        found = cursor.read()
        self.rewound = []
        if found.rewound:
            forgotten = self.mirror.deals_after(found.head)
            records = {cid: self.read(cid, found.head) for cid in forgotten}
            cursor.commit(found, lambda _: self._replace(records, found.head))
            self.rewound = forgotten
            return found
        # Deals the mirror lacks whose later events are in these logs: read once, at the head.
        missing = {cid for cid in deal_ids(found.logs)
                   if self.mirror.deal(cid) is None and not _opened_in(found.logs, cid)}
        records = {cid: self.read(cid, found.head) for cid in missing}
        cursor.commit(found, lambda p: self._apply(p, records))
        return found

    def deal(self, chain_id: int) -> dict[str, Any]:
        """The escrow's record of a deal in getDeal's names (with openedAt), from the mirror;
        read from the chain (and kept) when the mirror does not have it."""
        known = self.mirror.deal(chain_id)
        if known is None:
            head = self.ledger.block_number()
            record = self.read(chain_id, head)
            if int(record["status"]) == DealStatus.NONE:
                return {**record, "openedAt": 0}  # not opened (yet): nothing to keep
            self.mirror.put_deal(chain_id, record, head)
            known = self.mirror.deal(chain_id)
        return {**known, "openedAt": int(known["expiresAt"]) - self.duration()}

    def read(self, chain_id: int, block: int) -> dict[str, Any]:
        """The escrow's own record of a deal at a block (getDeal): one chain call."""
        return self.ledger.chain_deal(chain_id, block)

    def duration(self) -> int:
        """The escrow's dealDuration, read once."""
        if self._duration is None:
            self._duration = int(self.ledger.deal_duration())
        return self._duration

    def _apply(self, found: Pass, records: dict[int, dict[str, Any]]) -> None:
        for cid, record in records.items():
            self.mirror.put_deal(cid, record, found.head)
        for raw in found.logs:
            decoded = self.ledger.decode(raw)
            if decoded is None:
                continue
            name, args = decoded
            block = int(raw["blockNumber"])
            cid = int(args.get("dealId", 0))
            if name == "DealOpened":
                self.mirror.deal_opened(cid, args, block)
            elif name == "DeliveryStarted":
                self.mirror.deal_started(cid, int(args["buyerWh"]), block)
            elif name == "DeliveryReported":
                self.mirror.deal_delivered(cid, int(args["cumulativeWh"]), block)
            elif name == "DealClosed":
                self.mirror.deal_closed(cid, int(args["reason"]), int(args["deliveredWh"]),
                                       block)

    def _replace(self, records: dict[int, dict[str, Any]], head: int) -> None:
        """After a rewind: each re-read deal as the chain has it now (or gone, if unopened)."""
        for cid, record in records.items():
            if int(record["status"]) == DealStatus.NONE:
                self.mirror.forget_deal(cid)
                log.warning("chain deal %s is gone after the rewind to block %s", cid, head)
            else:
                self.mirror.put_deal(cid, record, head)
                log.warning("chain deal %s re-read after the rewind to block %s: %s Wh, %s", cid,
                            head, record["deliveredWh"], DealStatus(int(record["status"])).name)


def _deal_id(raw: dict[str, Any]) -> int:
    """The deal id of a deal event's log: its first indexed argument."""
    return int.from_bytes(bytes(raw["topics"][1]), "big")


def deal_ids(logs: list[dict[str, Any]]) -> set[int]:
    """The escrow deal ids these deal events' logs name."""
    return {_deal_id(raw) for raw in logs if len(raw["topics"]) > 1}


def _opened_in(logs: list[dict[str, Any]], chain_id: int) -> bool:
    """Whether these logs hold the DealOpened of a deal (its only event with four topics:
    dealId, offer and buyer are indexed), so its terms come with them."""
    return any(len(r["topics"]) == 4 and _deal_id(r) == chain_id for r in logs)
