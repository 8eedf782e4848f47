"""The store on SQLite and on PostgreSQL: same code, same answers, and exactly-once claims
when several workers (here: several connections) race for the same listing."""

from __future__ import annotations

import threading

import pytest

from marketplace.store import Store


@pytest.fixture
def store(location) -> Store:
    """A store of either dialect."""
    opened = Store(location)
    yield opened
    opened.close()


def test_rows_round_trip_with_their_types(store):
    store.add_participant("0xa", "alice", "producer", "pv-alice", "0xm")
    store.add_participant("0xa", "alice", "producer", "pv-2", None)  # an update, not a copy
    assert [p["board_id"] for p in store.participants()] == ["pv-2"]
    created = 1_767_000_000.123456  # sub-millisecond times survive (REAL is 8 bytes here)
    lid = store.add_listing("0xa", 50, 2**100, created, created + 60.5, closes_by=created + 120)
    listing = store.listing(lid)
    assert (listing["start_price"], listing["created"], listing["status"]) == (
        2**100, created, "open")
    assert store.listed_wh("0xa") == 50
    bid = store.add_bid(lid, "0xb", 2**70, created + 1, 2**64 - 1, 2**33, b"\x01\x02")
    assert store.bid(bid)["nonce"] == 2**64 - 1 and store.bid(bid)["expiry"] == 2**33
    assert store.bid(bid)["signature"] == "0x0102"
    store.set_listing_status(lid, "sold", bid)
    did = store.add_deal(lid, "0xb", "0xa", 2**70, 50, expires_at=2**33)
    store.update_deal(did, status="active", paid_wei=2**80, baseline_wh=1.5)
    deal = store.deal(did)
    assert (deal["paid_wei"], deal["baseline_wh"], deal["status"]) == (2**80, 1.5, "active")
    assert [d["id"] for d in store.deals("active")] == [did]
    store.set_cursor("events", 7)
    store.set_cursor("events", 9)
    assert store.cursor("events") == 9 and store.cursor("other") is None
    record = {"tx_hash": "0x1", "sender": "0xa", "nonce": 0, "label": "x", "status": "pending",
              "created": created, "block": None, "gas_used": None}
    store.save_transaction(record)
    store.save_transaction({**record, "status": "mined", "block": 3})
    assert store.transactions("0xa") == [{**record, "status": "mined", "block": 3}]


def test_a_returned_write_is_seen_by_a_store_opened_afterwards(location):
    first = Store(location)
    lid = first.add_listing("0xa", 5, 10, 1.0, 2.0)
    first.close()
    second = Store(location)  # a restart, or another worker
    try:
        assert second.listing(lid)["energy_wh"] == 5
    finally:
        second.close()


def test_the_market_s_named_queries_agree_on_both_databases(store):
    sold = store.add_listing("0xa", 10, 5, 1.0, 2.0)
    due = store.add_listing("0xa", 20, 5, 1.0, 2.0)
    later = store.add_listing("0xa", 30, 5, 1.0, 9.0)
    won = store.add_bid(sold, "0xb", 7, 1.5, 1, 9, b"\x00")
    store.add_bid(later, "0xb", 6, 1.6, 2, 9, b"\x00")
    store.add_bid(later, "0xc", 8, 1.7, 3, 9, b"\x00")
    store.set_listing_status(sold, "sold", won)
    kept = store.listing(later)
    assert (kept["bid_count"], kept["leader_price"], kept["leader_bidder"]) == (2, 8, "0xc")
    assert [row["id"] for row in store.due_listings(5.0)] == [due]
    assert store.committed("0xc", sold) == [{"price": 8, "energy_wh": 30}]
    assert store.committed("0xc", later) == [] and store.committed("0xb", sold) == []
    assert store.engaged("0xa") and store.engaged("0xb") and not store.engaged("0xc")
    deal = store.add_deal(sold, "0xb", "0xa", 7, 10)
    assert store.committed("0xb", later) == [{"price": 7, "energy_wh": 10}]  # not open yet
    assert [d["id"] for d in store.live_deals()] == [deal]
    assert store.deal_under_way("0xb", 0) is None  # opening: its meter is not busy yet
    store.update_deal(deal, status="active")
    assert store.deal_under_way("0xb", 0)["id"] == deal
    assert store.deal_under_way("0xb", deal) is None
    assert store.delivering_elsewhere("0xa", 0) and not store.delivering_elsewhere("0xa", deal)
    store.update_deal(deal, status="closed")
    assert store.live_deals() == [] and not store.engaged("0xb")


def test_a_failed_transaction_leaves_nothing(store):
    lid = store.add_listing("0xa", 5, 10, 1.0, 2.0)
    with pytest.raises(RuntimeError), store.transaction():
        store.set_listing_status(lid, "sold")
        raise RuntimeError("the chain said no")
    assert store.listing(lid)["status"] == "open"


def _workers(location: str, count: int, work) -> list:
    """Run work(store) on count threads, each with a store (a connection) of its own,
    released together; their results."""
    stores = [Store(location) for _ in range(count)]
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        start.wait()
        results[index] = work(stores[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for opened in stores:
        opened.close()
    return results


def test_racing_workers_close_a_listing_once(store, location):
    lid = store.add_listing("0xa", 5, 10, 1.0, 2.0)
    store.add_bid(lid, "0xb", 11, 1.5, 1, 9, b"\x00")

    def close(worker: Store) -> int | None:
        # What AuctionBook.close does: claim under the row lock, then write the deal.
        with worker.transaction():
            row = worker.lock_listing(lid)
            if row["status"] != "open":
                return None
            worker.set_listing_status(lid, "sold")
            return worker.add_deal(lid, "0xb", "0xa", 11, 5)

    deals = _workers(location, 4, close)
    assert len([d for d in deals if d]) == 1
    assert len(store.deals()) == 1 and store.listing(lid)["status"] == "sold"


def test_racing_equal_bids_one_is_accepted(store, location):
    lid = store.add_listing("0xa", 5, 10, 1.0, 2.0)

    def bid(worker: Store) -> bool:
        # What AuctionBook.place_bid does: the highest bid is read under the listing's row lock.
        with worker.transaction():
            highest = worker.lock_listing(lid)["leader_price"] or 10
            if 20 <= highest:
                return False
            worker.add_bid(lid, "0xb", 20, 1.5, 1, 9, b"\x00")
            return True

    assert sorted(_workers(location, 4, bid)) == [False, False, False, True]
    assert [b["price"] for b in store.bids(lid)] == [20]
    assert (store.listing(lid)["bid_count"], store.listing(lid)["leader_price"]) == (1, 20)


@pytest.mark.parametrize("locked", [False, True], ids=["alone", "in-locked-transaction"])
def test_the_highest_bid_is_kept_as_the_rule_picks_it(store, locked):
    """Highest price wins, the earliest on a tie; prices past 2**63 compare as numbers; the
    same when the bid's caller locked the listing's row in its transaction and passes it (as
    a placed bid does: add_bid then reads no leader of its own)."""
    def add_bid(*args):
        if not locked:
            return store.add_bid(*args)
        with store.transaction():
            return store.add_bid(*args, locked=store.lock_listing(args[0]))

    lid = store.add_listing("0xa", 5, 10, 1.0, 2.0)
    assert store.listing(lid)["leader_bid"] is None and store.listing(lid)["bid_count"] == 0
    first = add_bid(lid, "0xb", 2**64, 1.1, 1, 9, b"\x00")
    add_bid(lid, "0xc", 2**64, 1.2, 2, 9, b"\x00")  # a tie: the earlier one stays
    add_bid(lid, "0xc", 9 * 10**18, 1.3, 3, 9, b"\x00")  # shorter: lower, as text is not
    row = store.listing(lid)
    assert (row["bid_count"], row["leader_bid"], row["leader_bidder"]) == (3, first, "0xb")
    top = add_bid(lid, "0xc", 2**64 + 1, 1.4, 4, 9, b"\x00")
    assert (store.listing(lid)["leader_bid"], store.listing(lid)["leader_price"]) == (
        top, 2**64 + 1)


def test_a_lease_has_one_holder_until_it_expires_or_is_released(store, location):
    other = Store(location)
    try:
        assert store.hold_lease("settlement", "a", 30)
        assert store.hold_lease("settlement", "a", 30)  # renewed
        assert not other.hold_lease("settlement", "b", 30)
        store.release_lease("settlement", "a")
        assert other.hold_lease("settlement", "b", 0.05)
        assert not store.hold_lease("settlement", "a", 30)
        import time

        time.sleep(0.1)  # b stopped renewing: its lease runs out
        assert store.hold_lease("settlement", "a", 30)
    finally:
        other.close()


def test_an_older_database_s_bids_fill_the_kept_highest_bid(store, location):
    lid = store.add_listing("0xa", 5, 10, 1.0, 2.0)
    empty = store.add_listing("0xa", 5, 10, 1.0, 2.0)
    store.add_bid(lid, "0xb", 2**70, 1.1, 1, 9, b"\x00")
    best = store.add_bid(lid, "0xc", 2**70 + 7, 1.2, 2, 9, b"\x00")
    store.add_bid(lid, "0xb", 2**70 + 7, 1.3, 3, 9, b"\x00")
    # As an earlier version left it: the bids stored, nothing kept on the listing.
    store.write("DROP INDEX listings_by_leader")
    for column in ("bid_count", "leader_bid", "leader_price", "leader_bidder"):
        store.write(f"ALTER TABLE listings DROP COLUMN {column}")
    store.close()
    reopened = Store(location)
    try:
        row = reopened.listing(lid)
        assert (row["bid_count"], row["leader_bid"], row["leader_price"], row["leader_bidder"]
                ) == (3, best, 2**70 + 7, "0xc")
        assert reopened.listing(empty)["bid_count"] == 0
        assert reopened.committed("0xc", empty) == [{"price": 2**70 + 7, "energy_wh": 5}]
    finally:
        reopened.close()


def test_an_older_database_gets_the_new_columns(store, location):
    store.write("DROP TABLE deals")
    store.write("ALTER TABLE listings DROP COLUMN closes_by")
    store.close()
    reopened = Store(location)
    try:
        lid = reopened.add_listing("0xa", 5, 10, 1.0, 2.0, closes_by=64.0)
        assert reopened.listing(lid)["closes_by"] == 64.0
        assert reopened.deals() == []
    finally:
        reopened.close()


def test_a_sqlite_store_makes_its_directory(tmp_path):
    opened = Store(tmp_path / "not" / "yet" / "market.sqlite")
    try:
        assert opened.add_listing("0xa", 5, 10, 1.0, 2.0) == 1
    finally:
        opened.close()


def test_bridges_and_meter_consents_in_both_dialects(store):
    """F2: a board or meter is one live bridge's; a revoked bridge's id gives way. F3: a
    consent request keeps its sent state unless its terms change."""
    board = {"board_id": "load-x", "meter": "0xMeter"}
    assert store.add_bridge("a", "h1", [board], 1.0) is None
    assert "already registered" in store.add_bridge("a", "h2", [], 2.0)
    assert "bridge a's" in store.add_bridge("b", "h3", [{**board, "meter": "0xOther"}], 2.0)
    assert "bridge a's" in store.add_bridge("b", "h3", [{"board_id": "y", "meter": "0xmeter"}],
                                            2.0)
    assert store.bridge("a")["boards"] == [board] and store.bridge("a")["token_sha256"] == "h1"
    assert [b["id"] for b in store.bridges()] == ["a"] and "token_sha256" not in store.bridges()[0]
    assert store.revoke_bridge("a", 3.0) and not store.revoke_bridge("a", 4.0)
    assert store.bridge("a") is None
    assert store.add_bridge("b", "h3", [board], 5.0) is None  # the board is free again
    store.request_consent("0xo", "0xm", "load-x", 2, 240, 1.0)
    store.set_consent_status("0xo", "0xm", "sent", "0xtx")
    store.request_consent("0xo", "0xm", "load-x", 2, 240, 2.0)  # same terms: still sent
    assert store.consent("0xo", "0xm")["status"] == "sent" and store.consents("0xo") == []
    store.request_consent("0xo", "0xm", "load-x", 2, 14_400, 3.0)  # a new rating: asked again
    (pending,) = store.consents("0xo")
    assert (pending["rated_power_w"], pending["tx_hash"]) == (14_400, None)
    # Taken for sending once; a claim its worker never followed is released after a while.
    assert store.claim_consent("0xo", "0xm", 10.0) and not store.claim_consent("0xo", "0xm", 11.0)
    assert store.consents("0xo") == [] and store.release_stale_claims(5.0) == 0
    assert store.release_stale_claims(20.0) == 1 and len(store.consents("0xo")) == 1


def test_bus_disagreements_round_trip_on_both_databases(store):
    first = store.add_bus_disagreement(1_767_000_000.5, 12.25, 0.0, ["load-c", "pv-a"], [3])
    second = store.add_bus_disagreement(1_767_000_100.0, 40.0, 20.5, ["pv-a", "load-b"], [4, 5])
    rows = store.bus_disagreements()
    assert [r["id"] for r in rows] == [second, first]  # newest first
    assert rows[1] == {"id": first, "at": 1_767_000_000.5, "sellers_out_wh": 12.25,
                       "buyers_in_wh": 0.0, "boards": ["load-c", "pv-a"], "deals": [3]}
    assert rows[0]["deals"] == [4, 5]
