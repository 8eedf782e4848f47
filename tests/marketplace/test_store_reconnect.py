"""The store's PostgreSQL connection outlives a server restart: a real server, restarted."""

from __future__ import annotations

import pytest

from marketplace.errors import StoreUnavailable
from marketplace.store import Store
from tests.services import PostgresServer


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL server of this module's own: the tests restart it under a running store."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e .")
    started = PostgresServer()
    yield started
    started.stop()


@pytest.fixture
def store(server):
    """A store on a fresh database of that server."""
    opened = Store(server.new_database())
    yield opened
    opened.close()


def add(store: Store, name: str) -> None:
    store.add_participant(f"0x{name}", name, "consumer", None, None)


def names(store: Store) -> list[str]:
    return [p["name"] for p in store.participants()]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_reads_and_writes_go_on_after_the_server_restarts(server, store, mode):
    add(store, "before")
    server.restart(mode)
    assert names(store) == ["before"]  # the read went to a fresh connection
    server.restart(mode)
    add(store, "after")  # nothing of it ran on the dropped connection: sent again, once
    assert names(store) == ["after", "before"]
    assert store.hold_lease("settlement", "me", 5.0)  # and the statements with RETURNING


def test_a_transaction_the_restart_cut_fails_clearly_and_the_next_one_commits(server, store):
    with pytest.raises(StoreUnavailable, match="inside a transaction"):
        with store.transaction():
            add(store, "cut")
            server.restart("fast")
            add(store, "lost")
    assert names(store) == []  # none of it was committed
    with store.transaction():  # the caller's next pass
        add(store, "cut")
        add(store, "lost")
    assert names(store) == ["cut", "lost"]


def test_while_the_server_is_away_a_statement_says_so_and_works_once_it_is_back(server, store):
    add(store, "kept")
    server.pause()
    try:
        with pytest.raises(StoreUnavailable, match="refused"):
            names(store)
        with pytest.raises(StoreUnavailable):
            add(store, "meanwhile")
    finally:
        server.resume()
    add(store, "back")
    assert names(store) == ["back", "kept"]
