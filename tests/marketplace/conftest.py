"""Fixtures of the market tests: where a store lives, on either dialect."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "market.sqlite")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def istore(location):
    """The interval market's queries over a store of either dialect."""
    from marketplace.intervals.store import IntervalStore
    from marketplace.store import Store

    store = Store(location)
    yield IntervalStore(store)
    store.close()
