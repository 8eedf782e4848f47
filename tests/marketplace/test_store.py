"""The SQLite store: durable writes, and databases made by an earlier version still open."""

from __future__ import annotations

import sqlite3

from marketplace.store import Store


def test_a_database_from_before_soft_close_gets_its_new_column(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE listings (id INTEGER PRIMARY KEY, seller TEXT NOT NULL,"
               " energy_wh INTEGER NOT NULL, start_price TEXT NOT NULL, created REAL NOT NULL,"
               " deadline REAL NOT NULL, status TEXT NOT NULL DEFAULT 'open', winning_bid INTEGER)")
    db.execute("INSERT INTO listings (seller, energy_wh, start_price, created, deadline)"
               " VALUES ('0xabc', 10, '5', 1.0, 2.0)")
    db.commit()
    db.close()
    store = Store(path)
    try:
        old = store.listing(1)
        assert old["closes_by"] is None and old["start_price"] == 5  # kept, readable
        new = store.add_listing("0xdef", 20, 7, 3.0, 4.0, closes_by=64.0)
        assert store.listing(new)["closes_by"] == 64.0
    finally:
        store.close()


def test_wei_amounts_beyond_64_bits_round_trip(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    try:
        listing = store.add_listing("0xabc", 10, 2**100, 1.0, 2.0)
        assert store.listing(listing)["start_price"] == 2**100
    finally:
        store.close()
