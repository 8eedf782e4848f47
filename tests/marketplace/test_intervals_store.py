"""The interval market's tables on SQLite and PostgreSQL: round trips, one active order per
owner, and a boundary claimed by exactly one of several racing workers."""

from __future__ import annotations

import threading

from marketplace.intervals.store import IntervalStore
from marketplace.store import Store


def test_orders_modes_fills_readings_and_batches_round_trip(istore):
    first = istore.add_order("0xa", "sell", {"floorWeiPerKWh": str(2**100)}, "0x01", "0xh1", 1.5)
    second = istore.add_order("0xa", "sell", {"floorWeiPerKWh": "5"}, "0x02", "0xh2", 2.5)
    assert istore.add_order("0xa", "sell", {}, "0x02", "0xh2", 3.0) is None  # placed once
    assert istore.order(first)["status"] == "replaced"
    assert istore.active_order("0xa")["id"] == second
    assert istore.order(first)["order"] == {"floorWeiPerKWh": str(2**100)}
    assert istore.mode("0xa")["mode"] == "lots"
    istore.request_mode("0xa", "intervals")
    assert [r["address"] for r in istore.requested_modes()] == ["0xa"]
    istore.switch_mode("0xa", "intervals", 7)
    assert istore.mode("0xa")["since_interval"] == 7 and istore.in_mode("intervals") == {"0xa"}
    assert istore.claim(2**40, 1.0, "w", "clear")
    istore.clear_interval(2**40, 2**90, {"offers": [{"seller": "0xa"}], "bids": [], "fills": [],
                                         "orders": []})
    row = istore.interval(2**40)
    assert (row["price_wei"], row["offers"], row["status"]) == (2**90, [{"seller": "0xa"}],
                                                                 "open")
    istore.add_fill(2**40, "0xb", "buy", second, 30, 2**90)
    fill = istore.fills(2**40)[0]
    assert istore.unsettled() == []  # not accounted yet
    istore.account_fill(fill["id"], 31, 30, 2**80)
    assert [f["paid_wei"] for f in istore.unsettled("0xb")] == [2**80]
    assert istore.spent_since("0xb", 0) == 2**80
    istore.add_reading(2**40, "0xm", "end", {"whIn": 5})
    istore.add_reading(2**40, "0xm", "end", {"whIn": 6})  # the first one stays
    assert istore.readings(2**40) == {"start": {}, "end": {"0xm": {"whIn": 5}}}
    batch = istore.add_batch(2**40, {"positions": [1]}, "0xsig", 4.0)
    istore.update_batch(batch, status="sent", tx_hash="0xt")
    istore.mark_settled([fill["id"]], batch)
    assert istore.unsettled() == [] and istore.batches(status="sent")[0]["positions"] == {
        "positions": [1]}


def test_racing_workers_claim_a_boundary_once(istore, location):
    results: list[bool] = []
    stores = [Store(location) for _ in range(4)]

    def claim(store: Store) -> None:
        results.append(IntervalStore(store).claim(12, 1.0, str(id(store)), "clear"))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(results) == [False, False, False, True]
    assert istore.last_n() == 12


def test_reopening_a_batch_no_longer_mined_leaves_its_fills_alone(istore):
    """A boundary worker found batch X mined and its receipt gone (the chain went back), then
    reopens it; meanwhile the settlement lease's holder reopened X itself, sent its bytes
    again and is following the new receipt: it marked X's fills settled and has not yet
    written X mined (Batching._follow: mark_settled, then update_batch)."""
    istore.claim(7, 1.0, "w", "clear")
    order = istore.add_order("0xs", "sell", {"floorWeiPerKWh": "5"}, "0x01", "0xh1", 1.0)
    istore.add_fill(7, "0xs", "sell", order, 30, 5)
    fill = istore.fills(7)[0]
    istore.account_fill(fill["id"], 30, 30, 150)
    batch = istore.add_batch(7, {"positions": []}, "0xsig", 4.0)
    istore.update_batch(batch, status="sent", tx_hash="0xt")  # followed again
    istore.mark_settled([fill["id"]], batch)  # the follower, mid-way
    istore.reopen_batch(batch)  # the boundary worker's, late
    istore.update_batch(batch, status="mined")  # the follower, done
    assert istore.unsettled("0xs") == []  # settled by the mined batch
