"""The interval market's queries: standing orders, modes, intervals, fills, readings, batches.

Tables are marketplace.database's SCHEMA; this wraps the market's Store (one connection,
its transactions and row locks) so marketplace.store keeps the lot market's queries only.
"""

from __future__ import annotations

import json
from typing import Any

from marketplace.states import ENDED, ListingState
from marketplace.store import Store

ACTIVE, REPLACED, CANCELLED, EXPIRED = "active", "replaced", "cancelled", "expired"
LOTS, INTERVALS = "lots", "intervals"
# A fill's settled_batch when it owes nothing (0 Wh, 0 wei) and no position needs to carry it
# (marketplace.intervals.positions): no batch has id 0.
NOTHING_OWED = 0


class IntervalStore:
    """Named SQL of the interval market over the market's Store."""

    def __init__(self, store: Store):
        self.db = store

    # -- standing orders -------------------------------------------------------------------

    def add_order(
        self, owner: str, kind: str, order: dict[str, Any], signature: str, digest: str,
        now: float,
    ) -> int | None:
        """Store an owner's signed order, replacing its active one; None if already stored."""
        with self.db.transaction():
            if self.db.one("SELECT id FROM standing_orders WHERE hash = ?", digest):
                return None
            self.db.write("UPDATE standing_orders SET status = ? WHERE owner = ? AND status = ?",
                          REPLACED, owner, ACTIVE)
            return self.db.insert(
                "INSERT INTO standing_orders (owner, kind, order_json, signature, hash, status,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                owner, kind, json.dumps(order), signature, digest, ACTIVE, now)

    def active_order(self, owner: str) -> dict[str, Any] | None:
        """An owner's active standing order, or None."""
        return _order(self.db.one("SELECT * FROM standing_orders WHERE owner = ? AND status = ?",
                                  owner, ACTIVE))

    def order(self, order_id: int) -> dict[str, Any] | None:
        """One standing order by id (any status)."""
        return _order(self.db.one("SELECT * FROM standing_orders WHERE id = ?", order_id))

    def latest_order(self, owner: str) -> dict[str, Any] | None:
        """An owner's newest standing order (any status), or None."""
        return _order(self.db.one("SELECT * FROM standing_orders WHERE owner = ? ORDER BY id"
                                  " DESC LIMIT 1", owner))

    def order_by_hash(self, digest: str) -> dict[str, Any] | None:
        """The standing order with this EIP-712 hash (0x hex), or None."""
        return _order(self.db.one("SELECT * FROM standing_orders WHERE hash = ?",
                                  digest.lower()))

    def active_orders(self) -> list[dict[str, Any]]:
        """Every active standing order, oldest first."""
        rows = self.db.query("SELECT * FROM standing_orders WHERE status = ? ORDER BY id", ACTIVE)
        return [_order(r) for r in rows]

    def set_order_status(self, order_id: int, status: str) -> bool:
        """End an active order (cancelled, expired); whether it was active."""
        return self.db.write("UPDATE standing_orders SET status = ? WHERE id = ? AND status = ?",
                             status, order_id, ACTIVE) > 0

    # -- market modes ----------------------------------------------------------------------

    def mode(self, address: str) -> dict[str, Any]:
        """An account's market mode row (lots, never switched: since None)."""
        row = self.db.one("SELECT * FROM market_modes WHERE address = ?", address)
        return row or {"address": address, "mode": LOTS, "since_interval": None,
                       "requested": None}

    def request_mode(self, address: str, mode: str | None) -> None:
        """Ask for a switch at a coming boundary (None: call the request off)."""
        self.db.write("INSERT INTO market_modes (address, mode, requested) VALUES (?, ?, ?)"
                      " ON CONFLICT(address) DO UPDATE SET requested = excluded.requested",
                      address, LOTS, mode)

    def switch_mode(self, address: str, mode: str, n: int) -> None:
        """The requested switch takes effect from interval n."""
        self.db.write("UPDATE market_modes SET mode = ?, since_interval = ?, requested = NULL"
                      " WHERE address = ?", mode, n, address)

    def requested_modes(self) -> list[dict[str, Any]]:
        """Accounts with a switch asked for."""
        return self.db.query("SELECT * FROM market_modes WHERE requested IS NOT NULL")

    def in_mode(self, mode: str) -> set[str]:
        """Addresses whose market is mode now."""
        return {r["address"] for r in self.db.query(
            "SELECT address FROM market_modes WHERE mode = ?", mode)}

    def open_in_lots(self, address: str) -> bool:
        """Whether an account has anything open in the lot market (a listing, a bid on an
        open listing, or a deal not over)."""
        if self.db.engaged(address):
            return True
        row = self.db.one(
            "SELECT l.id FROM listings l WHERE l.status = ? AND (l.seller = ? OR EXISTS"
            " (SELECT 1 FROM bids b WHERE b.listing_id = l.id AND b.bidder = ?)) LIMIT 1",
            ListingState.OPEN, address, address)
        if row is not None:
            return True
        return self.db.one(
            "SELECT id FROM deals WHERE (buyer = ? OR seller = ?) AND status NOT IN"
            f" ({', '.join('?' * len(ENDED))}) LIMIT 1", address, address, *ENDED) is not None

    # -- intervals -------------------------------------------------------------------------

    def claim(self, n: int, now: float, worker: str, pricing: str) -> bool:
        """Claim interval n's opening boundary for this worker; False if another claimed it."""
        rows = self.db.query(
            "INSERT INTO intervals (n, cleared_at, worker, pricing) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(n) DO NOTHING RETURNING n", n, now, worker, pricing)
        return bool(rows)

    def last_n(self) -> int | None:
        """The newest claimed interval, or None before the first."""
        row = self.db.one("SELECT MAX(n) AS n FROM intervals")
        return None if row is None or row["n"] is None else int(row["n"])

    def interval(self, n: int) -> dict[str, Any] | None:
        """One interval's row, its JSON columns parsed (status 'claimed' until cleared)."""
        return _interval(self.db.one("SELECT * FROM intervals WHERE n = ?", n))

    def intervals(self, limit: int) -> list[dict[str, Any]]:
        """The newest cleared intervals first."""
        rows = self.db.query("SELECT * FROM intervals WHERE status <> 'claimed' ORDER BY n DESC"
                             " LIMIT ?", limit)
        return [_interval(r) for r in rows]

    def unaccounted(self, before: int) -> list[int]:
        """Intervals before `before` that were cleared (or only claimed) and not accounted."""
        rows = self.db.query("SELECT n FROM intervals WHERE n < ? AND status <> 'accounted'"
                             " ORDER BY n", before)
        return [int(r["n"]) for r in rows]

    def next_n(self, n: int) -> int | None:
        """The interval claimed after n (the one its end reading starts), or None."""
        row = self.db.one("SELECT MIN(n) AS n FROM intervals WHERE n > ?", n)
        return None if row is None or row["n"] is None else int(row["n"])

    def prev_n(self, n: int) -> int | None:
        """The interval claimed before n (whose end reading starts n), or None."""
        row = self.db.one("SELECT MAX(n) AS n FROM intervals WHERE n < ?", n)
        return None if row is None or row["n"] is None else int(row["n"])

    def clear_interval(self, n: int, price: int | None, book: dict[str, list]) -> None:
        """Record an interval's clearing: price, offers, bids, fills and orders (as JSON)."""
        self.db.write(
            "UPDATE intervals SET price_wei = ?, offers_json = ?, bids_json = ?, fills_json = ?,"
            " orders_json = ?, status = 'open' WHERE n = ?", None if price is None else str(price),
            *(json.dumps(book[k]) for k in ("offers", "bids", "fills", "orders")), n)

    def claim_accounting(self, n: int) -> bool:
        """Mark interval n accounted, first thing in the transaction that accounts it: False
        when another worker did (its row lock serializes the two), so books are made once."""
        return self.db.write("UPDATE intervals SET status = 'accounted' WHERE n = ? AND"
                             " status <> 'accounted'", n) > 0

    def set_interval_status(self, n: int, status: str) -> None:
        """Move an interval on (open → accounted)."""
        self.db.write("UPDATE intervals SET status = ? WHERE n = ?", status, n)

    # -- fills -----------------------------------------------------------------------------

    def add_fill(self, n: int, address: str, side: str, order_id: int, wh: int,
                 price: int) -> None:
        """One participant's fill (one side) in interval n."""
        self.db.write("INSERT INTO interval_fills (n, address, side, order_id, wh, price_wei)"
                      " VALUES (?, ?, ?, ?, ?, ?)", n, address, side, order_id, wh, str(price))

    def fills(self, n: int) -> list[dict[str, Any]]:
        """Interval n's fills, by address."""
        return self.db.query("SELECT * FROM interval_fills WHERE n = ? ORDER BY address, side", n)

    def measure_fill(self, fill_id: int, metered: int) -> None:
        """What a fill's meter counted over its interval's window (before it is accounted)."""
        self.db.write("UPDATE interval_fills SET metered_wh = ? WHERE id = ? AND billed_wh IS"
                      " NULL", metered, fill_id)

    def account_fill(self, fill_id: int, metered: int, billed: int, paid: int,
                     spill: int = 0) -> None:
        """What a fill's meter counted in its window and in the next one's (spill), what was
        billed (or burned) and paid (or earned)."""
        self.db.write("UPDATE interval_fills SET metered_wh = ?, spill_wh = ?, billed_wh = ?,"
                      " paid_wei = ? WHERE id = ?", metered, spill, billed, str(paid), fill_id)

    def unaccounted_fills(self, address: str | None = None) -> list[dict[str, Any]]:
        """Fills not accounted yet (the interval under way and the one before), of one account
        when given."""
        if address is None:
            return self.db.query("SELECT * FROM interval_fills WHERE billed_wh IS NULL ORDER BY"
                                 " n, address")
        return self.db.query("SELECT * FROM interval_fills WHERE address = ? AND billed_wh IS"
                             " NULL ORDER BY n", address)

    def fills_of(self, address: str, limit: int) -> list[dict[str, Any]]:
        """An account's newest fills first."""
        return self.db.query("SELECT * FROM interval_fills WHERE address = ? ORDER BY n DESC"
                             " LIMIT ?", address, limit)

    def not_settled(self, address: str | None = None) -> list[dict[str, Any]]:
        """Fills not settled on chain, accounted or not (of one account when given), oldest
        first: one read, so a fill another worker accounts meanwhile is in it either way (read
        as unsettled() then unaccounted_fills(), it was in neither)."""
        sql = "SELECT * FROM interval_fills WHERE settled_batch IS NULL"
        if address is None:
            return self.db.query(sql + " ORDER BY n, address")
        return self.db.query(sql + " AND address = ? ORDER BY n", address)

    def unsettled(self, address: str | None = None) -> list[dict[str, Any]]:
        """Accounted fills not settled on chain yet (of one account when given), oldest first."""
        sql = "SELECT * FROM interval_fills WHERE billed_wh IS NOT NULL AND settled_batch IS NULL"
        if address is None:
            return self.db.query(sql + " ORDER BY n, address")
        return self.db.query(sql + " AND address = ? ORDER BY n", address)

    def fills_since(self, address: str, first_n: int) -> list[dict[str, Any]]:
        """An account's fills from interval first_n on, accounted or not (one read)."""
        return self.db.query("SELECT * FROM interval_fills WHERE address = ? AND n >= ? ORDER"
                             " BY n", address, first_n)

    def spent_since(self, address: str, first_n: int) -> int:
        """Wei an account paid (accounted buys) from interval first_n on."""
        rows = self.db.query("SELECT paid_wei FROM interval_fills WHERE address = ? AND side ="
                             " 'buy' AND n >= ? AND paid_wei IS NOT NULL", address, first_n)
        return sum(int(r["paid_wei"]) for r in rows)

    def mark_settled(self, fill_ids: list[int], batch_id: int) -> None:
        """Fills a mined batch settled."""
        for fill_id in fill_ids:
            self.db.write("UPDATE interval_fills SET settled_batch = ? WHERE id = ?",
                          batch_id, fill_id)

    # -- boundary readings -----------------------------------------------------------------

    def add_reading(self, n: int, meter: str, boundary: str, reading: dict[str, Any]) -> None:
        """A meter's signed reading at interval n's start or end (the first one kept)."""
        self.db.write("INSERT INTO interval_readings (n, meter, boundary, reading_json)"
                      " VALUES (?, ?, ?, ?) ON CONFLICT(n, meter, boundary) DO NOTHING",
                      n, meter, boundary, json.dumps(reading))

    def set_end_reading(self, n: int, meter: str, reading: dict[str, Any]) -> None:
        """Move a meter's end reading of interval n later (its fill's spill into the next
        interval, where it had none: marketplace.intervals.accounting)."""
        self.db.write("UPDATE interval_readings SET reading_json = ? WHERE n = ? AND meter = ?"
                      " AND boundary = 'end'", json.dumps(reading), n, meter)

    def latest_start(self, meter: str, before_n: int) -> dict[str, Any] | None:
        """A meter's start reading at the latest boundary before interval before_n that has
        one (one index seek: interval_readings_by_meter)."""
        row = self.db.one("SELECT reading_json FROM interval_readings WHERE meter = ? AND"
                          " boundary = 'start' AND n < ? ORDER BY n DESC LIMIT 1",
                          meter, before_n)
        return None if row is None else json.loads(row["reading_json"])

    def readings(self, n: int) -> dict[str, dict[str, dict[str, Any]]]:
        """Interval n's readings: {boundary: {meter: signed reading JSON}}."""
        found: dict[str, dict[str, dict[str, Any]]] = {"start": {}, "end": {}}
        for row in self.db.query("SELECT * FROM interval_readings WHERE n = ?", n):
            found[row["boundary"]][row["meter"]] = json.loads(row["reading_json"])
        return found

    # -- batches ---------------------------------------------------------------------------

    def add_batch(self, through_n: int, positions: dict[str, Any], signature: str | None,
                  now: float) -> int:
        """A batch about to be sent; its id."""
        return self.db.insert(
            "INSERT INTO interval_batches (through_n, status, positions_json, operator_sig,"
            " created_at) VALUES (?, 'sending', ?, ?, ?)", through_n, json.dumps(positions),
            signature, now)

    def update_batch(self, batch_id: int, **fields: Any) -> None:
        """Change some fields of a batch (status, tx_hash, error)."""
        names = ", ".join(f"{name} = ?" for name in fields)
        self.db.write(f"UPDATE interval_batches SET {names} WHERE id = ?", *fields.values(),
                      batch_id)

    def batches(self, after: int = 0, limit: int = 100,
                status: str | None = None) -> list[dict[str, Any]]:
        """Batches with ids above after, oldest first (of one status when given)."""
        where, args = ("AND status = ?", (status,)) if status else ("", ())
        rows = self.db.query(f"SELECT * FROM interval_batches WHERE id > ? {where} ORDER BY id"
                             " LIMIT ?", after, *args, limit)
        return [{**r, "positions": json.loads(r.pop("positions_json"))} for r in rows]

    def newest_mined(self, limit: int) -> list[dict[str, Any]]:
        """The newest mined batches with a transaction, newest first (no positions)."""
        return self.db.query("SELECT id, tx_hash FROM interval_batches WHERE status = 'mined'"
                             " AND tx_hash IS NOT NULL ORDER BY id DESC LIMIT ?", limit)

    def reopen_batch(self, batch_id: int) -> None:
        """A mined batch the chain forgot: in flight again, the fills it settled unsettled.
        Only if it is still mined here: another worker may have reopened it, sent it again and
        be following it (its fills settled again, the batch not yet mined), and those fills
        must stay settled."""
        with self.db.transaction():
            if self.db.write("UPDATE interval_batches SET status = 'sent' WHERE id = ? AND"
                             " status = 'mined'", batch_id):
                self.db.write("UPDATE interval_fills SET settled_batch = NULL WHERE"
                              " settled_batch = ?", batch_id)

    def newest_batches(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest batches of any status, newest first."""
        rows = self.db.query("SELECT * FROM interval_batches ORDER BY id DESC LIMIT ?", limit)
        return [{**r, "positions": json.loads(r.pop("positions_json"))} for r in rows]


def _order(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {**row, "order": json.loads(row.pop("order_json"))}


def _interval(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    parsed = dict(row)
    for key in ("offers", "bids", "fills", "orders"):
        parsed[key] = json.loads(parsed.pop(f"{key}_json"))
    return parsed
