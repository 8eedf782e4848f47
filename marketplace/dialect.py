"""The store's SQL dialects: SQLite (one machine, the default) and PostgreSQL (several workers).

The store writes its SQL once, in SQLite's spelling (`?` placeholders, INTEGER, REAL); a
dialect connects, translates that spelling where the other database differs, and supplies
what has no common spelling: the transaction that locks, row locks, the database's clock,
and a lock across processes.
"""

from __future__ import annotations

import fcntl
import re
import select
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from marketplace.errors import StoreUnavailable


class Dialect:
    """What differs between the databases the store runs on."""

    name = "?"
    shared = False  # several portal processes may use the store at once
    begin = "BEGIN"  # opens a transaction that later statements join
    for_update = ""  # appended to a SELECT to lock its rows until the transaction ends
    now = ""  # SQL expression: the database's clock, seconds since the epoch

    def connect(self) -> Any:
        """A connection in autocommit mode: each statement outside a transaction commits."""
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """A statement in this dialect's spelling."""
        return text

    def schema(self, text: str) -> str:
        """CREATE statements in this dialect's types."""
        return text

    def columns(self, db: Any, table: str) -> set[str]:
        """The column names a table has now."""
        raise NotImplementedError

    def run_script(self, db: Any, text: str) -> None:
        """Run several statements."""
        raise NotImplementedError

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock called name against every process that uses this store."""
        raise NotImplementedError
        yield

    def lost(self, db: Any, err: Exception) -> bool:
        """Whether err means the server dropped the connection (a fresh one may work)."""
        return False

    def never_ran(self, err: Exception) -> bool:
        """Whether a lost connection's statement certainly did not commit anything."""
        return False

    def stale(self, db: Any) -> bool:
        """Whether an idle connection may have been dropped by the server (worth a probe)."""
        return False


class SQLite(Dialect):
    """A file (WAL) with FULL synchronous commits: a returned write survived a power cut."""

    name = "sqlite"
    # IMMEDIATE takes the database's write lock at once: transactions serialize, across
    # processes too, so reads inside one see no concurrent writer.
    begin = "BEGIN IMMEDIATE"
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: str):
        self.path = path
        self._locks: dict[str, threading.Lock] = {}

    def connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged bid survives a power cut, not only a crash.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def columns(self, db: sqlite3.Connection, table: str) -> set[str]:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}

    def run_script(self, db: sqlite3.Connection, text: str) -> None:
        db.executescript(text)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if self.path == ":memory:":
                yield
                return
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with open(f"{self.path}.{name}.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                yield


# SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown, cannot_connect_now.
SESSION_ENDED = {"57P01", "57P02", "57P03"}


class Postgres(Dialect):
    """PostgreSQL through psycopg 3; a commit returns once the server flushed it (the default
    synchronous_commit=on)."""

    name = "postgresql"
    shared = True
    for_update = " FOR UPDATE"
    now = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

    def __init__(self, url: str):
        self.url = url
        try:
            import psycopg
        except ImportError as err:
            raise StoreUnavailable(
                f"{url} needs psycopg 3: pip install 'psycopg[binary]'"
            ) from err
        self._psycopg = psycopg

    def connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.OperationalError as err:
            raise StoreUnavailable(f"PostgreSQL at {_safe(self.url)} refused: {err}") from err

    def lost(self, db: Any, err: Exception) -> bool:
        return isinstance(err, self._psycopg.OperationalError) and (db.closed or db.broken)

    def stale(self, db: Any) -> bool:
        # An idle connection has nothing to read unless the server said something: most
        # likely that it ended the session (or closed the socket). One syscall, no round trip.
        if db.closed:
            return True
        return bool(select.select([db.fileno()], [], [], 0)[0])

    def never_ran(self, err: Exception) -> bool:
        # The server ended the session (shutdown, restart, crash of another backend) before
        # or by aborting the statement: an aborted transaction committed nothing.
        return getattr(err, "sqlstate", None) in SESSION_ENDED

    def sql(self, text: str) -> str:
        # The store never puts `?` or `%` inside SQL string literals, so this is enough.
        return text.replace("%", "%%").replace("?", "%s")

    def schema(self, text: str) -> str:
        text = re.sub(
            r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            text,
        )
        text = re.sub(r"\bINTEGER\b", "BIGINT", text)  # ids, Wh, unix times past 2038
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)  # REAL is 4 bytes here

    def columns(self, db: Any, table: str) -> set[str]:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {row[0] for row in rows}

    def run_script(self, db: Any, text: str) -> None:
        for statement in text.split(";"):
            if statement.strip():
                db.execute(statement)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        # An advisory lock on a connection of its own: it never blocks the store's connection,
        # and it is released when that connection closes, even if this process dies.
        with self.connect() as db:
            db.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(name.encode()),))
            yield


def dialect_for(location: str | Path) -> Dialect:
    """The dialect of a store URL (postgresql://…, sqlite:///path) or a SQLite file path."""
    text = str(location)
    scheme = urlparse(text).scheme
    if scheme in ("postgresql", "postgres"):
        return Postgres(text)
    if scheme == "sqlite":
        return SQLite(text.removeprefix("sqlite:///"))  # sqlite:////abs, sqlite:///rel
    if scheme and len(scheme) > 1:  # a Windows drive letter is not a scheme
        raise StoreUnavailable(f"unknown store URL {text!r}: use postgresql://… or a file path")
    return SQLite(text)


def _safe(url: str) -> str:
    """A URL without its password, for messages and logs."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
