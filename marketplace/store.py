"""The market's store: participants, listings, bids, deals; a write returns once durable.

SQLite (WAL) by default; PostgreSQL, for several portal workers, through the same code: the
SQL below is written once and marketplace.dialect adapts it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from marketplace.dialect import dialect_for

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    address TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('producer', 'consumer')),
    board_id TEXT,
    meter_address TEXT
);
CREATE TABLE IF NOT EXISTS listings (
    id INTEGER PRIMARY KEY,
    seller TEXT NOT NULL,
    energy_wh INTEGER NOT NULL,
    start_price TEXT NOT NULL,
    created REAL NOT NULL,
    deadline REAL NOT NULL,
    closes_by REAL,
    status TEXT NOT NULL DEFAULT 'open',
    winning_bid INTEGER
);
CREATE TABLE IF NOT EXISTS bids (
    id INTEGER PRIMARY KEY,
    listing_id INTEGER NOT NULL REFERENCES listings(id),
    bidder TEXT NOT NULL,
    price TEXT NOT NULL,
    created REAL NOT NULL,
    nonce TEXT NOT NULL,
    expiry INTEGER NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bids_by_listing ON bids(listing_id);
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    block INTEGER,
    gas_used INTEGER,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_sender ON transactions(sender, created);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deals (
    id INTEGER PRIMARY KEY,
    listing_id INTEGER UNIQUE NOT NULL REFERENCES listings(id),
    chain_deal_id INTEGER,
    buyer TEXT NOT NULL,
    seller TEXT NOT NULL,
    price TEXT NOT NULL,
    energy_wh INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'opening',
    baseline_wh REAL,
    delivered_wh INTEGER NOT NULL DEFAULT 0,
    reported_wh INTEGER NOT NULL DEFAULT 0,
    paid_wei TEXT NOT NULL DEFAULT '0',
    refunded_wei TEXT,
    expires_at INTEGER,
    opened REAL,
    closed REAL,
    close_reason TEXT,
    error TEXT
);
"""

# Columns added after the first release: (table, column, type) for older databases.
COLUMNS_ADDED = [("listings", "closes_by", "REAL"), ("deals", "expires_at", "INTEGER")]

# Amounts in wei can pass 2**63, so they are stored as decimal text and converted here.
WEI_COLUMNS = {"start_price", "price", "paid_wei", "refunded_wei", "nonce"}


def _row(names: list[str], values: tuple) -> dict[str, Any]:
    return {
        name: int(value) if name in WEI_COLUMNS and value is not None else value
        for name, value in zip(names, values, strict=True)
    }


class Store:
    """One database connection shared by the portal's threads through a lock.

    location: a SQLite file path, or a URL (postgresql://user@host/db, sqlite:///path).
    """

    def __init__(self, location: str | Path):
        self.path = str(location)
        self.dialect = dialect_for(location)
        self._lock = threading.RLock()
        self._depth = 0  # transactions open on this connection (nested ones join the outer)
        # Workers starting together must not race each other's CREATE TABLE.
        with self.dialect.exclusive("schema"):
            self._db = self.dialect.connect()
            with self._lock:
                self.dialect.run_script(self._db, self.dialect.schema(SCHEMA))
                self._migrate()

    @property
    def shared(self) -> bool:
        """Whether several portal processes may work on this store at once."""
        return self.dialect.shared

    def _migrate(self) -> None:
        """Add the columns later versions introduced to a database an earlier one made."""
        for table, column, kind in COLUMNS_ADDED:
            if column not in self.dialect.columns(self._db, table):
                self._db.execute(
                    self.dialect.schema(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of a read query."""
        with self._lock:
            cursor = self._db.execute(self.dialect.sql(sql), tuple(_text(a) for a in args))
            names = [column[0] for column in cursor.description]
            return [_row(names, values) for values in cursor.fetchall()]

    def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of a read query, or None."""
        rows = self.query(sql, *args)
        return rows[0] if rows else None

    def write(self, sql: str, *args: Any) -> int:
        """Run one statement (committed unless inside transaction()); the rows it changed."""
        with self._lock:
            cursor = self._db.execute(self.dialect.sql(sql), tuple(_text(a) for a in args))
            return cursor.rowcount

    def insert(self, sql: str, *args: Any) -> int:
        """Run one INSERT into a table with an id column; the new row's id."""
        with self._lock:
            cursor = self._db.execute(
                self.dialect.sql(sql + " RETURNING id"), tuple(_text(a) for a in args)
            )
            return int(cursor.fetchall()[0][0])  # fetched to the end: SQLite then commits

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together or not at all; rows read with lock_* stay
        locked against every worker until the end. Nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute(self.dialect.begin)
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a named lock against every process using this store (e.g. start-up work)."""
        with self.dialect.exclusive(name):
            yield

    # -- leases: one worker at a time does what must not be done twice ---------------------

    def hold_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease called name for holder; whether holder has it now.

        Another holder's lease is taken only once it expired, by the database's clock, so
        workers' clocks need not agree.
        """
        now = self.dialect.now
        rows = self.query(
            f"INSERT INTO leases (name, holder, expires) VALUES (?, ?, {now} + ?)"
            " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
            f" expires = excluded.expires WHERE leases.holder = excluded.holder"
            f" OR leases.expires < {now} RETURNING holder",
            name, holder, ttl_s,
        )
        return bool(rows)

    def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up (on a clean stop), so another worker takes it without waiting."""
        self.write("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder)

    # -- participants ----------------------------------------------------------------------

    def add_participant(
        self, address: str, name: str, role: str, board_id: str | None, meter: str | None
    ) -> None:
        """Record (or update) who an address is and which board measures it."""
        self.write(
            "INSERT INTO participants (address, name, role, board_id, meter_address)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET name=excluded.name,"
            " role=excluded.role, board_id=excluded.board_id, meter_address=excluded.meter_address",
            address, name, role, board_id, meter,
        )

    def participant(self, address: str) -> dict[str, Any] | None:
        """One participant by address."""
        return self.one("SELECT * FROM participants WHERE address = ?", address)

    def participants(self) -> list[dict[str, Any]]:
        """Every participant, by name."""
        return self.query("SELECT * FROM participants ORDER BY name")

    # -- listings and bids -----------------------------------------------------------------

    def add_listing(
        self, seller: str, energy_wh: int, start_price: int, created: float, deadline: float,
        closes_by: float | None = None,
    ) -> int:
        """Store a new open listing; its id. closes_by caps soft-close extensions."""
        return self.insert(
            "INSERT INTO listings (seller, energy_wh, start_price, created, deadline, closes_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            seller, energy_wh, start_price, created, deadline,
            deadline if closes_by is None else closes_by,
        )

    def set_deadline(self, listing_id: int, deadline: float) -> None:
        """Move a listing's deadline (soft close)."""
        self.write("UPDATE listings SET deadline = ? WHERE id = ?", deadline, listing_id)

    def listing(self, listing_id: int) -> dict[str, Any] | None:
        """One listing by id."""
        return self.one("SELECT * FROM listings WHERE id = ?", listing_id)

    def lock_listing(self, listing_id: int) -> dict[str, Any] | None:
        """One listing by id, locked against other workers until the transaction() ends."""
        return self.one("SELECT * FROM listings WHERE id = ?" + self.dialect.for_update,
                        listing_id)

    def listings(self, status: str | None = None) -> list[dict[str, Any]]:
        """Listings, newest first, optionally of one status."""
        if status:
            return self.query("SELECT * FROM listings WHERE status = ? ORDER BY id DESC", status)
        return self.query("SELECT * FROM listings ORDER BY id DESC")

    def set_listing_status(
        self, listing_id: int, status: str, winning_bid: int | None = None
    ) -> None:
        """Move a listing to a new status."""
        self.write(
            "UPDATE listings SET status = ?, winning_bid = COALESCE(?, winning_bid) WHERE id = ?",
            status, winning_bid, listing_id,
        )

    def listed_wh(self, seller: str) -> int:
        """Energy a seller has committed and the escrow has not taken yet: open listings, and
        sold ones whose deal is not opened on chain (their tokens are still the seller's)."""
        row = self.one(
            "SELECT COALESCE(SUM(energy_wh), 0) AS wh FROM listings WHERE seller = ? AND"
            " (status = 'open' OR (status = 'sold' AND id IN (SELECT listing_id FROM deals"
            " WHERE status = 'opening' AND chain_deal_id IS NULL)))",
            seller,
        )
        return int(row["wh"])

    def add_bid(
        self, listing_id: int, bidder: str, price: int, created: float,
        nonce: int, expiry: int, signature: bytes,
    ) -> int:
        """Store a signed bid durably; its id."""
        return self.insert(
            "INSERT INTO bids (listing_id, bidder, price, created, nonce, expiry, signature)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            listing_id, bidder, price, created, nonce, expiry, "0x" + signature.hex(),
        )

    def bids(self, listing_id: int) -> list[dict[str, Any]]:
        """Every bid on a listing, in arrival order."""
        return self.query("SELECT * FROM bids WHERE listing_id = ? ORDER BY id", listing_id)

    def bid(self, bid_id: int) -> dict[str, Any] | None:
        """One bid by id."""
        return self.one("SELECT * FROM bids WHERE id = ?", bid_id)

    # -- transactions the portal signed (receipts the app keeps) -----------------------------

    def save_transaction(self, record: dict[str, Any]) -> None:
        """Keep (or update) what the app knows of a transaction and its receipt."""
        self.write(
            "INSERT INTO transactions (tx_hash, sender, nonce, label, status, created, block,"
            " gas_used, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(tx_hash) DO UPDATE"
            " SET status = excluded.status, block = excluded.block,"
            " gas_used = excluded.gas_used, record = excluded.record",
            record["tx_hash"], record["sender"], record["nonce"], record["label"],
            record["status"], record["created"], record["block"], record["gas_used"],
            json.dumps(record),
        )

    def transactions(self, sender: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest transactions an address sent through the portal."""
        rows = self.query(
            "SELECT record FROM transactions WHERE sender = ? ORDER BY created DESC LIMIT ?",
            sender, limit,
        )
        return [json.loads(row["record"]) for row in rows]

    # -- cursors of chain readers ---------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        """The next block a chain reader called name should read, if it has read before."""
        row = self.one("SELECT block FROM cursors WHERE name = ?", name)
        return None if row is None else int(row["block"])

    def set_cursor(self, name: str, block: int) -> None:
        """Remember where a chain reader stopped."""
        self.write(
            "INSERT INTO cursors (name, block) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET block = excluded.block",
            name, block,
        )

    # -- deals -----------------------------------------------------------------------------

    def add_deal(
        self, listing_id: int, buyer: str, seller: str, price: int, energy_wh: int,
        expires_at: int | None = None,
    ) -> int:
        """Record the deal an auction produced, before it is opened on chain."""
        return self.insert(
            "INSERT INTO deals (listing_id, buyer, seller, price, energy_wh, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            listing_id, buyer, seller, price, energy_wh, expires_at,
        )

    def deal(self, deal_id: int) -> dict[str, Any] | None:
        """One deal by id."""
        return self.one("SELECT * FROM deals WHERE id = ?", deal_id)

    def deals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first, optionally of one status."""
        if status:
            return self.query("SELECT * FROM deals WHERE status = ? ORDER BY id DESC", status)
        return self.query("SELECT * FROM deals ORDER BY id DESC")

    def update_deal(self, deal_id: int, **fields: Any) -> None:
        """Change some fields of a deal."""
        names = ", ".join(f"{name} = ?" for name in fields)
        self.write(f"UPDATE deals SET {names} WHERE id = ?", *fields.values(), deal_id)


def _text(value: Any) -> Any:
    # Python ints beyond SQLite's 64 bits would overflow; wei amounts go in as text.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value
