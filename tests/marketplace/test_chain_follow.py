"""Settlement follows the escrow from its events: one cursor, no read of each deal, rewinds."""

from __future__ import annotations

import logging

import pytest

from geth_private.counting import RpcCounter
from marketplace.chain_deals import ChainDeals
from marketplace.chain_store import ChainStore, CursorMoved
from marketplace.contract_enums import DealStatus
from marketplace.store import Store
from tests.common import wait_for
from tests.marketplace.common import ready


def two_opened_deals(runtime, clock):
    """Two deals opened on the escrow (alice sells to bob and to carol): delivering, or already
    done (25 and 12 Wh deliver in seconds at the emulator's speed, so on a loaded machine a
    poll can miss the moment both are active at once)."""
    people = ready(runtime)
    first = people["alice"].list(25, 1000, 30)  # bob's: long enough to close by hand
    second = people["alice"].list(12, 1000, 30)
    people["bob"].bid(first["id"], 3000)
    people["carol"].bid(second["id"], 4000)
    clock.advance(30)
    market = runtime.market

    def both_opened():
        opened = [d for d in market.deals() if d["chain_deal_id"] is not None
                  and d["status"] in ("active", "closed")]
        return opened if len(opened) == 2 else None

    return people, wait_for(both_opened, what="both deals to open")


def test_a_pass_reads_the_new_logs_once_and_no_deal_of_the_escrow(runtime, clock):
    _, deals = two_opened_deals(runtime, clock)
    market, w3 = runtime.market, runtime.ledger.w3
    get_deal = "eth_call:0x" + w3.keccak(text="getDeal(uint256)")[:4].hex()
    counter = RpcCounter(w3)
    try:
        with counter.counting() as calls:  # the pass takes its own lock: one pass at a time
            market.settlement.advance_all()
    finally:
        counter.remove()
    assert calls[get_deal] == 0, calls  # the escrow's deals come from the store's mirror
    assert calls["eth_getLogs"] <= 1, calls
    assert counter.reads() <= 3, calls  # the head, the cursor's block, the logs
    mirror = ChainStore(runtime.store)
    for deal in deals:  # the mirror is the escrow's record as of the pass
        known, chain = mirror.deal(deal["chain_deal_id"]), runtime.ledger.chain_deal(
            deal["chain_deal_id"])
        assert known["started"] and known["status"] in (DealStatus.OPEN, DealStatus.CLOSED)
        if known["status"] == DealStatus.CLOSED:  # closed as of the pass: the chain agrees
            assert chain["status"] == DealStatus.CLOSED
        assert known["buyer"] == deal["buyer"] and known["energyWh"] == deal["energy_wh"]


def test_the_cursor_survives_a_restart_and_a_close_in_between_is_applied(
        runtime, clock, tmp_path):
    people, deals = two_opened_deals(runtime, clock)
    location = tmp_path / "follower.sqlite"
    store = Store(location)
    follower = ChainDeals(store, runtime.ledger)
    first = follower.follow()
    deal = next(d for d in deals if d["buyer"] == people["bob"].address)
    closed_before = follower.deal(deal["chain_deal_id"])["status"] == DealStatus.CLOSED
    store.close()  # the worker stops
    if not closed_before and runtime.market.deal(deal["id"])["status"] == "active":
        people["bob"].close(deal["id"])  # else its delivery completed it meanwhile
    wait_for(lambda: runtime.market.deal(deal["id"])["status"] == "closed", what="the close")
    store = Store(location)  # the worker starts again, on the same store
    follower = ChainDeals(store, runtime.ledger)
    again = follower.follow()
    assert again.start == first.end + 1  # read on from where it stopped, not from block 0
    closed = follower.deal(deal["chain_deal_id"])
    assert closed["status"] == DealStatus.CLOSED
    assert closed["paidWei"] == runtime.ledger.chain_deal(deal["chain_deal_id"])["paidWei"]
    store.close()


def test_two_workers_never_both_apply_the_same_blocks(runtime, postgres_url):
    ready(runtime)
    one, other = Store(postgres_url), Store(postgres_url)
    try:
        cursor_one = ChainDeals(one, runtime.ledger).cursor()
        cursor_other = ChainDeals(other, runtime.ledger).cursor()
        seen_one, seen_other = cursor_one.read(), cursor_other.read()
        cursor_one.commit(seen_one, lambda _: None)
        marker = "applied-by-the-second-worker"

        def apply_other(_):
            other.end_session(marker, 0.0, 10**9)  # a write that must roll back with it

        with pytest.raises(CursorMoved):
            cursor_other.commit(seen_other, apply_other)
        assert not other.session_ended(marker)
        assert ChainStore(other).cursor("settlement")[0] == seen_one.end + 1
        assert cursor_other.read().start == seen_one.end + 1  # it reads on from there
    finally:
        one.close()
        other.close()


def test_a_chain_that_went_back_is_noticed_by_the_block_hash(runtime, tmp_path, caplog):
    ready(runtime)
    backend, ledger = runtime.backend, runtime.ledger
    store = Store(tmp_path / "follower.sqlite")
    cursor = ChainDeals(store, ledger).cursor()
    snapshot = backend.snapshot()
    backend.mine(2)
    cursor.commit(cursor.read(), lambda _: None)
    height = ledger.block_number()
    backend.revert(snapshot)
    ledger.fund(ledger.operator.address, 1)  # another block where the forgotten one was
    backend.mine(max(0, height - ledger.block_number()))
    assert ledger.block_number() == height  # same height: only the hash tells
    with caplog.at_level(logging.WARNING, logger="marketplace.chainlog"):
        found = cursor.read()
    assert found.rewound and "chain went back" in caplog.text
    cursor.commit(found, lambda _: None)
    assert not cursor.read().rewound  # the cursor is at the head now
    store.close()


def test_a_deal_the_chain_forgot_is_opened_again(runtime, clock, caplog):
    people = ready(runtime)
    listing = people["alice"].list(10, 1000, 30)
    approval = runtime.txm.record(runtime.store.listing(listing["id"])["approval_tx"])
    wait_for(lambda: approval.status == "mined", what="the approval")
    snapshot = runtime.backend.snapshot()  # the chain as a state dump would keep it
    people["bob"].bid(listing["id"], 3000)
    market, ledger = runtime.market, runtime.ledger
    with caplog.at_level(logging.WARNING):
        clock.advance(30)
        deal = wait_for(lambda: next((d for d in market.deals() if d["status"] == "active"),
                                     None), what="the deal to open")
        runtime.backend.revert(snapshot)  # the node forgets the deal, as anvil restarted would
        assert ledger.deal_count() == 0
        wait_for(lambda: f"deal {deal['id']} re-checked" in caplog.text, what="the re-check")
        again = wait_for(lambda: ledger.deal_count() == 1 and market.deal(deal["id"])["status"]
                         == "active" and market.deal(deal["id"]), what="the deal opened again")
    assert "chain went back" in caplog.text
    assert again["chain_deal_id"] == 1 and ledger.chain_deal(1)["buyer"] == people["bob"].address
    assert ledger.chain_deal(1)["started"]  # its baseline was sent again too
