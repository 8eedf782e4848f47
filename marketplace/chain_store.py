"""The store's statements for following the chain: log cursors and the escrow's deals mirrored.

A cursor names the next block a role (settlement, announce) reads logs from and the hash of the
block before it, so a chain that went back (anvil restarted from an older state dump) is
noticed. It moves only by compare-and-set inside the transaction that applied what was read:
two workers that both think they hold a role cannot both apply the same blocks.
"""

from __future__ import annotations

from typing import Any

from marketplace.database import Database
from marketplace.errors import MarketError


class CursorMoved(MarketError, RuntimeError):
    """Another worker advanced a cursor since it was read: what was applied is rolled back."""


# The escrow's deal record as EnergyEscrow.getDeal names it, from the mirror's columns.
_FIELDS = {"buyer": "buyer", "seller": "seller", "priceWeiPerKWh": "price",
           "energyWh": "energy_wh", "expiresAt": "expires_at", "buyerBaseWh": "buyer_base_wh",
           "deliveredWh": "delivered_wh", "status": "status", "closeReason": "close_reason"}


# A row's block: the latest block whose event changed it (what a rewind below it must re-read).
_BLOCK = "block = CASE WHEN block < ? THEN ? ELSE block END"


class ChainStore:
    """Cursors and the mirrored escrow deals, over the market's database."""

    def __init__(self, db: Database):
        self.db = db

    # -- cursors ---------------------------------------------------------------------------

    def cursor(self, name: str) -> tuple[int, str | None] | None:
        """(next block to read, hash of the block before it) of a role, if it read before."""
        row = self.db.one("SELECT block, hash FROM cursors WHERE name = ?", name)
        return None if row is None else (int(row["block"]), row["hash"])

    def advance(
        self, name: str, seen: tuple[int, str | None] | None, block: int, block_hash: str | None
    ) -> None:
        """Move a cursor from what was read (seen) to block; CursorMoved if it moved since."""
        if seen is None:
            changed = self.db.write(
                "INSERT INTO cursors (name, block, hash) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO NOTHING", name, block, block_hash)
        else:
            changed = self.db.write(
                "UPDATE cursors SET block = ?, hash = ? WHERE name = ? AND block = ?",
                block, block_hash, name, seen[0])
        if changed != 1:
            raise CursorMoved(f"cursor {name} was moved by another worker")

    # -- the escrow's deals ----------------------------------------------------------------

    def deal_opened(self, chain_id: int, terms: dict[str, Any], block: int) -> None:
        """A DealOpened: the deal's fixed terms (a deal already mirrored keeps what it has)."""
        self.db.write(
            "INSERT INTO chain_deals (chain_deal_id, buyer, seller, price, energy_wh, expires_at,"
            " block) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(chain_deal_id) DO UPDATE SET"
            " buyer = excluded.buyer, seller = excluded.seller, price = excluded.price,"
            " energy_wh = excluded.energy_wh, expires_at = excluded.expires_at,"
            " block = CASE WHEN chain_deals.block < excluded.block THEN excluded.block"
            " ELSE chain_deals.block END",
            chain_id, terms["buyer"], terms["seller"], terms["priceWeiPerKWh"],
            terms["energyWh"], terms["expiresAt"], block)

    def deal_started(self, chain_id: int, buyer_base_wh: int, block: int) -> None:
        """A DeliveryStarted: the buyer's meter baseline is on chain."""
        self.db.write(f"UPDATE chain_deals SET started = 1, buyer_base_wh = ?, {_BLOCK}"
                      " WHERE chain_deal_id = ?", buyer_base_wh, block, block, chain_id)

    def deal_delivered(self, chain_id: int, delivered_wh: int, block: int) -> None:
        """A DeliveryReported: what the escrow counts delivered (and paid) so far."""
        self.db.write(
            "UPDATE chain_deals SET delivered_wh = CASE WHEN delivered_wh < ? THEN ? ELSE"
            f" delivered_wh END, {_BLOCK} WHERE chain_deal_id = ?",
            delivered_wh, delivered_wh, block, block, chain_id)

    def deal_closed(self, chain_id: int, reason: int, delivered_wh: int, block: int) -> None:
        """A DealClosed, with its reason and final delivery."""
        self.db.write(
            f"UPDATE chain_deals SET status = 2, close_reason = ?, delivered_wh = ?, {_BLOCK}"
            " WHERE chain_deal_id = ?", reason, delivered_wh, block, block, chain_id)

    def put_deal(self, chain_id: int, deal: dict[str, Any], block: int) -> None:
        """The escrow's whole record of a deal as read at block (replacing the mirror's)."""
        values = {column: deal[key] for key, column in _FIELDS.items()}
        values["started"] = int(bool(deal["started"]))
        values["buyer_base_wh"] = int(deal["buyerBaseWh"]) if deal["started"] else None
        names = ", ".join(values)
        updates = ", ".join(f"{n} = excluded.{n}" for n in [*values, "block"])
        self.db.write(
            f"INSERT INTO chain_deals (chain_deal_id, {names}, block) VALUES"
            f" (?, {', '.join('?' * len(values))}, ?) ON CONFLICT(chain_deal_id) DO UPDATE"
            f" SET {updates}", chain_id, *(int(v) if isinstance(v, bool) else v
                                          for v in values.values()), block)

    def forget_deal(self, chain_id: int) -> None:
        """Drop a mirrored deal the chain no longer has (it went back before its opening)."""
        self.db.write("DELETE FROM chain_deals WHERE chain_deal_id = ?", chain_id)

    def deal(self, chain_id: int) -> dict[str, Any] | None:
        """A mirrored deal in getDeal's names (paidWei, lockedWei derived as the escrow does)."""
        row = self.db.one("SELECT * FROM chain_deals WHERE chain_deal_id = ?", chain_id)
        if row is None or row["buyer"] is None:
            return None
        deal = {key: row[column] for key, column in _FIELDS.items()}
        price = int(row["price"])
        deal["priceWeiPerKWh"] = price
        deal["started"] = bool(row["started"])
        deal["buyerBaseWh"] = row["buyer_base_wh"] or 0
        deal["paidWei"] = price * int(row["delivered_wh"]) // 1000
        deal["lockedWei"] = price * int(row["energy_wh"]) // 1000
        deal["block"] = row["block"]
        return deal

    def deals_after(self, block: int) -> list[int]:
        """Mirrored deals an event of a block after this one changed (a rewind's to re-read)."""
        rows = self.db.query("SELECT chain_deal_id FROM chain_deals WHERE block > ?", block)
        return [int(r["chain_deal_id"]) for r in rows]
