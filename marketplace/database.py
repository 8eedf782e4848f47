"""The store's database: its tables, one connection, statements, transactions, cross-process locks.

SQLite (WAL) by default; PostgreSQL, for several portal workers, through the same code: the
SQL is written once and marketplace.dialect adapts it. marketplace.store names the queries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from marketplace.dialect import dialect_for
from marketplace.errors import StoreUnavailable
from marketplace.states import DealState, ListingState

log = logging.getLogger(__name__)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS participants (
    address TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('producer', 'consumer')),
    board_id TEXT,
    meter_address TEXT
);
CREATE TABLE IF NOT EXISTS registrations (
    address TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    keystore TEXT NOT NULL,
    serve_keystore INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ended_sessions (
    sid TEXT PRIMARY KEY,
    ended REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS listings (
    id INTEGER PRIMARY KEY,
    seller TEXT NOT NULL,
    energy_wh INTEGER NOT NULL,
    start_price TEXT NOT NULL,
    created REAL NOT NULL,
    deadline REAL NOT NULL,
    closes_by REAL,
    approval_tx TEXT,
    status TEXT NOT NULL DEFAULT '{ListingState.OPEN}',
    winning_bid INTEGER,
    offer TEXT,
    offer_signature TEXT,
    offer_hash TEXT,
    bid_count INTEGER NOT NULL DEFAULT 0,
    leader_bid INTEGER,
    leader_price TEXT,
    leader_bidder TEXT
);
CREATE TABLE IF NOT EXISTS bids (
    id INTEGER PRIMARY KEY,
    listing_id INTEGER NOT NULL REFERENCES listings(id),
    bidder TEXT NOT NULL,
    price TEXT NOT NULL,
    created REAL NOT NULL,
    nonce TEXT NOT NULL,
    expiry INTEGER NOT NULL,
    signature TEXT NOT NULL,
    buyer_meter TEXT
);
CREATE INDEX IF NOT EXISTS bids_by_listing ON bids(listing_id);
CREATE INDEX IF NOT EXISTS bids_by_bidder ON bids(bidder, nonce);
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
CREATE TABLE IF NOT EXISTS chain_deals (
    chain_deal_id INTEGER PRIMARY KEY,
    buyer TEXT,
    seller TEXT,
    price TEXT,
    energy_wh INTEGER,
    expires_at INTEGER,
    started INTEGER NOT NULL DEFAULT 0,
    buyer_base_wh INTEGER,
    delivered_wh INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 1,
    close_reason INTEGER NOT NULL DEFAULT 0,
    block INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bus_disagreements (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    sellers_out_wh REAL NOT NULL,
    buyers_in_wh REAL NOT NULL,
    boards TEXT NOT NULL,
    deals TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bridges (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    boards TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS meter_consents (
    owner TEXT NOT NULL,
    meter TEXT NOT NULL,
    board_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    rated_power_w INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    tx_hash TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (owner, meter)
);
CREATE TABLE IF NOT EXISTS deals (
    id INTEGER PRIMARY KEY,
    listing_id INTEGER UNIQUE NOT NULL REFERENCES listings(id),
    chain_deal_id INTEGER,
    buyer TEXT NOT NULL,
    seller TEXT NOT NULL,
    price TEXT NOT NULL,
    energy_wh INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT '{DealState.OPENING}',
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
CREATE TABLE IF NOT EXISTS standing_orders (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sell', 'buy')),
    order_json TEXT NOT NULL,
    signature TEXT NOT NULL,
    hash TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS standing_orders_by_owner ON standing_orders(owner, status);
CREATE TABLE IF NOT EXISTS market_modes (
    address TEXT PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('lots', 'intervals')),
    since_interval INTEGER,
    requested TEXT
);
CREATE TABLE IF NOT EXISTS intervals (
    n INTEGER PRIMARY KEY,
    cleared_at REAL NOT NULL,
    worker TEXT NOT NULL,
    price_wei TEXT,
    pricing TEXT NOT NULL,
    offers_json TEXT NOT NULL DEFAULT '[]',
    bids_json TEXT NOT NULL DEFAULT '[]',
    fills_json TEXT NOT NULL DEFAULT '[]',
    orders_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'claimed'
);
CREATE TABLE IF NOT EXISTS interval_fills (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    address TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('sell', 'buy')),
    order_id INTEGER NOT NULL,
    wh INTEGER NOT NULL,
    price_wei TEXT NOT NULL,
    metered_wh INTEGER,
    billed_wh INTEGER,
    paid_wei TEXT,
    settled_batch INTEGER,
    spill_wh INTEGER,
    UNIQUE (n, address, side)
);
CREATE INDEX IF NOT EXISTS interval_fills_by_address ON interval_fills(address, n);
CREATE TABLE IF NOT EXISTS interval_readings (
    n INTEGER NOT NULL,
    meter TEXT NOT NULL,
    boundary TEXT NOT NULL CHECK (boundary IN ('start', 'end')),
    reading_json TEXT NOT NULL,
    PRIMARY KEY (n, meter, boundary)
);
CREATE TABLE IF NOT EXISTS interval_batches (
    id INTEGER PRIMARY KEY,
    through_n INTEGER NOT NULL,
    tx_hash TEXT,
    status TEXT NOT NULL,
    positions_json TEXT NOT NULL,
    operator_sig TEXT,
    created_at REAL NOT NULL,
    error TEXT
);
"""

# Columns added after the first release: (table, column, type) for older databases.
COLUMNS_ADDED = [("listings", "closes_by", "REAL"), ("deals", "expires_at", "INTEGER"),
                 ("listings", "approval_tx", "TEXT"), ("listings", "offer", "TEXT"),
                 ("listings", "offer_signature", "TEXT"), ("listings", "offer_hash", "TEXT"),
                 ("bids", "buyer_meter", "TEXT"), ("interval_fills", "spill_wh", "INTEGER"),
                 ("cursors", "hash", "TEXT"),
                 # A listing's bid count and highest bid, kept with each bid (Store.add_bid).
                 ("listings", "bid_count", "INTEGER NOT NULL DEFAULT 0"),
                 ("listings", "leader_bid", "INTEGER"), ("listings", "leader_price", "TEXT"),
                 ("listings", "leader_bidder", "TEXT"),
                 # When a consent was taken for sending (web.runtime.meters: stale claims).
                 ("meter_consents", "claimed_at", "REAL")]
# Indexes over added columns: made once the columns exist (a seller's offer lists once), and
# indexes added later (a settlement pass reads the opening deals and finds deals by escrow id).
INDEXES_ADDED = ["CREATE UNIQUE INDEX IF NOT EXISTS listings_by_offer ON listings(offer_hash)",
                 "CREATE INDEX IF NOT EXISTS listings_by_leader ON listings(leader_bidder, status)",
                 "CREATE INDEX IF NOT EXISTS listings_by_status ON listings(status, deadline)",
                 "CREATE INDEX IF NOT EXISTS deals_by_status ON deals(status)",
                 "CREATE INDEX IF NOT EXISTS deals_by_chain_id ON deals(chain_deal_id)",
                 # A meter's latest boundary reading (marketplace.intervals.step._capture).
                 "CREATE INDEX IF NOT EXISTS interval_readings_by_meter"
                 " ON interval_readings(meter, boundary, n)"]

# Amounts in wei can pass 2**63, so they are stored as decimal text and converted here.
WEI_COLUMNS = {"start_price", "price", "paid_wei", "refunded_wei", "nonce", "price_wei",
               "leader_price"}


def _row(names: list[str], values: tuple) -> dict[str, Any]:
    return {
        name: int(value) if name in WEI_COLUMNS and value is not None else value
        for name, value in zip(names, values, strict=True)
    }


class Database:
    """One database connection shared by the portal's threads through a lock.

    location: a SQLite file path, or a URL (postgresql://user@host/db, sqlite:///path).
    """

    def __init__(self, location: str | Path):
        self.path = str(location)
        self.dialect = dialect_for(location)
        self._lock = threading.RLock()
        self._depth = 0  # transactions open on this connection (nested ones join the outer)
        self._db: Any = None  # None after the server dropped it: the next statement reconnects
        # Workers starting together must not race each other's CREATE TABLE.
        with self.dialect.exclusive("schema"):
            self._db = self.dialect.connect()
            with self._lock:
                self.dialect.run_script(self._db, self.dialect.schema(SCHEMA))
                self._migrate()
                self._after_migrate()

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
        for index in INDEXES_ADDED:
            self._db.execute(index)

    def _after_migrate(self) -> None:
        """Fill what added columns keep for rows an earlier version wrote (marketplace.store)."""

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._db is not None:
                self._db.close()

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of a read query."""
        with self._lock:
            cursor = self._run(sql, args, rerun=True)  # a read may always run again
            names = [column[0] for column in cursor.description]
            return [_row(names, values) for values in cursor.fetchall()]

    def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of a read query, or None."""
        rows = self.query(sql, *args)
        return rows[0] if rows else None

    def write(self, sql: str, *args: Any) -> int:
        """Run one statement (committed unless inside transaction()); the rows it changed."""
        with self._lock:
            return self._run(sql, args).rowcount

    def insert(self, sql: str, *args: Any) -> int:
        """Run one INSERT into a table with an id column; the new row's id."""
        with self._lock:
            cursor = self._run(sql + " RETURNING id", args)
            return int(cursor.fetchall()[0][0])  # fetched to the end: SQLite then commits

    def _run(self, sql: str, args: tuple[Any, ...], rerun: bool = False) -> Any:
        """Execute one statement; on a connection the server dropped (PostgreSQL restarted),
        once more on a fresh one when nothing of it can have been committed: a read, or a
        statement the server ended before it ran. Inside a transaction the transaction is
        lost: StoreUnavailable, and its caller's next pass does it again."""
        if self._db is None or (not self._depth and self.dialect.stale(self._db)):
            self._refresh()
        text, values = self.dialect.sql(sql), tuple(_text(a) for a in args)
        try:
            return self._db.execute(text, values)
        except Exception as err:
            if not self.dialect.lost(self._db, err):
                raise
            self._drop()
            if self._depth:
                raise StoreUnavailable("the connection to the database was lost inside a "
                                       "transaction: none of it was committed; try again"
                                       ) from err
            if not (rerun or self.dialect.never_ran(err)):
                raise StoreUnavailable("the connection to the database was lost while a "
                                       f"statement ran; it may or may not have been applied: "
                                       f"{err}") from err
            self._reconnect()
            return self._db.execute(text, values)

    def _refresh(self) -> None:
        """Before a statement: a fresh connection if the server dropped this one (its socket
        had something to read while idle: a termination notice, or the end of the stream),
        so a write is not sent down a dead connection where its fate would be unknown."""
        if self._db is not None:
            try:
                self._db.execute("SELECT 1")
                return
            except Exception as err:
                if not self.dialect.lost(self._db, err):
                    raise
                self._drop()
        self._reconnect()

    def _drop(self) -> None:
        """Forget a connection the server dropped (the next statement opens a fresh one)."""
        try:
            self._db.close()
        except Exception:  # already gone
            pass
        self._db = None

    def _reconnect(self) -> None:
        """A fresh connection (StoreUnavailable while the server is still away)."""
        self._db = self.dialect.connect()
        log.warning("reconnected to the %s store", self.dialect.name)

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
            self._run(self.dialect.begin, (), rerun=True)  # BEGIN commits nothing
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                if self._db is not None:  # a dropped connection rolled back already
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._commit()

    def _commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except Exception as err:
            if not self.dialect.lost(self._db, err):
                raise
            self._drop()
            if self.dialect.never_ran(err):
                raise StoreUnavailable("the database ended the session before the commit: "
                                       "the transaction was not committed; try again") from err
            raise StoreUnavailable(f"the connection to the database was lost at the commit; "
                                   f"whether it was applied is not known: {err}") from err

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a named lock against every process using this store (e.g. start-up work)."""
        with self.dialect.exclusive(name):
            yield


def _text(value: Any) -> Any:
    if isinstance(value, Enum):  # a state or a contract enum goes in as what it stands for
        return value.value
    # Python ints beyond SQLite's 64 bits would overflow; wei amounts go in as text.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value
