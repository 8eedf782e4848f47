"""A position's closing reading is newer than what its account last settled on (issue 16,
the chaos day's bridge kill): a boundary stores a board's cached signed reading, stale while
its bridge is away (readings are signed each whole second), so a fill's end reading can be
the very reading the account last settled on. Built as it was at every boundary, that
position was refused READING_OUT_OF_TIME at every one; it closes on a later boundary reading,
never one past the account's next fill (that reading holds the next fill's Wh).

The store is real (SQLite and PostgreSQL); the chain's answers (the account's settled state,
an order verified) are given by a stand-in ledger: the contract's own rule is checked in
tests/contracts/test_interval_settlement.py ("READING_OUT_OF_TIME" cases).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from firmware_bridge.signing import SignedReading
from marketplace.intervals.batching import Batching
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.positions import group_fills
from marketplace.intervals.step import BoundaryStep
from marketplace.intervals.store import NOTHING_OWED, IntervalStore
from marketplace.settings import Settings

METER = "0x00000000000000000000000000000000000000aa"
BUYER = "0x00000000000000000000000000000000000000b0"


def reading(wh: int, at: int) -> dict:
    return {"meter": METER, "whIn": wh, "whOut": 0, "timestamp": at, "signature": "0x"}


class Settled:
    """The contract's answers for one account: its last settled reading, orders verified."""

    def __init__(self, last_interval: int, last_at: int, last_wh: int):
        self.state = {"last_interval": last_interval, "last_at": last_at, "last_wh": last_wh,
                      "day": 0, "day_spent_wei": 0}

    def position_of(self, account: str, meter: str) -> dict:
        return self.state

    def order_state(self, digest: bytes) -> dict:
        return {"state": "verified"}

    def parameters(self) -> dict:
        return {"interval_wall_s": 2}



def batching(istore: IntervalStore, chain: Settled) -> Batching:
    ledger = SimpleNamespace(intervals=chain)
    return Batching(istore, SimpleNamespace(istore=istore), ledger, clock=None,
                    settings=Settings(), boundaries=Boundaries(900, 600),
                    members=lambda: [], signed=lambda board: None)


def interval(istore: IntervalStore, n: int, start: dict, end: dict) -> None:
    assert istore.claim(n, float(n), "w", "clear")
    istore.clear_interval(n, 10, {"offers": [], "bids": [], "fills": [], "orders": []})
    istore.add_reading(n, METER, "start", start)
    istore.add_reading(n, METER, "end", end)


def fill(istore: IntervalStore, n: int, order: int, billed: int) -> None:
    istore.add_fill(n, BUYER, "buy", order, billed, 10)
    (row,) = [f for f in istore.fills(n) if f["order_id"] == order]
    istore.account_fill(row["id"], billed, billed, 10 * billed)


def test_a_stale_closing_is_replaced_by_the_next_newer_boundary_reading(istore):
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    settled = reading(100, 1_000)  # what the account's last position closed on
    interval(istore, 10, reading(90, 998), settled)
    interval(istore, 11, settled, settled)  # its bridge away: the cached reading again
    interval(istore, 12, settled, reading(130, 1_004))  # back: a newer one
    fill(istore, 10, order, 8)
    chain = Settled(last_interval=9, last_at=1_000, last_wh=92)
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=12)
    # Not the reading the account settled on; the position spans the later one's interval.
    assert position["closing"]["timestamp"] == 1_004
    assert (position["from_interval"], position["to_interval"], position["wh"]) == (10, 12, 8)
    # Nothing newer signed yet: the position waits rather than being refused again.
    assert batching(istore, chain).positions.build(istore.unsettled(), through_n=11) is None


def test_a_stale_closing_never_passes_a_fill_not_accounted_yet(istore):
    """Batching runs through the interval just ended, whose fills are accounted a boundary
    later: a stale position searching for a newer closing took that interval's end reading
    while the account's fill there was not counted yet, so the chain settled the interval
    without its Wh (a chaos day's seller, 5 Wh unpaid, "settled on chain by no batch kept
    here" at every boundary after). It waits for the fill, then takes it in."""
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    settled = reading(100, 1_000)
    interval(istore, 10, reading(90, 998), settled)  # its end: the reading it settled on
    interval(istore, 11, settled, reading(105, 1_004))
    fill(istore, 10, order, 8)
    istore.add_fill(11, BUYER, "buy", order, 5, 10)  # cleared, not accounted yet
    chain = Settled(last_interval=9, last_at=1_000, last_wh=92)
    assert batching(istore, chain).positions.build(istore.unsettled(), through_n=11) is None
    (later,) = istore.fills(11)
    istore.account_fill(later["id"], 5, 5, 50)
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=11)
    assert (position["from_interval"], position["to_interval"], position["wh"]) == (10, 11, 13)
    assert position["closing"]["timestamp"] == 1_004


@pytest.mark.parametrize("billed", [0, 8])
def test_a_later_fill_keeps_the_position_before_it(istore, billed):
    """The next newer reading lies past the account's next fill (another order's): closing
    on it, this position took in that fill's Wh, and the contract refused the next position
    OVER_METERED at every boundary (tests/marketplace/test_intervals_overmetered.py). A
    position that owes nothing is settled without one; one that owes (only when boundary
    readings went back in time) waits rather than close past the next fill."""
    first = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    later = istore.add_order(BUYER, "buy", {"meter": METER}, "0x02", "0xh2", 2.0)
    settled = reading(100, 1_000)
    interval(istore, 10, reading(100, 1_000), settled)
    interval(istore, 11, settled, reading(104, 1_003))
    interval(istore, 12, reading(104, 1_003), reading(130, 1_004))
    fill(istore, 10, first, billed)
    fill(istore, 11, later, 4)  # the next order's fill: it must stay after this position
    chain = Settled(last_interval=9, last_at=1_000, last_wh=100)
    fills = [f for f in istore.unsettled() if f["order_id"] == first]
    assert batching(istore, chain).positions.build(fills, through_n=12) is None
    left = [f["n"] for f in istore.unsettled()]
    assert left == ([11] if billed == 0 else [10, 11])
    if billed == 0:
        assert [f["settled_batch"] for f in istore.fills(10)] == [NOTHING_OWED]
        # The next order's position closes on its own reading, counted from the last settled.
        mine = [f for f in istore.unsettled() if f["order_id"] == later]
        position = batching(istore, chain).positions.build(mine, through_n=12)
        assert (position["closing"]["timestamp"], position["to_interval"]) == (1_003, 11)


def test_a_first_position_closes_after_its_baseline(istore):
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    cached = reading(100, 1_000)  # start and end alike: the bridge was away all interval
    interval(istore, 10, cached, cached)
    interval(istore, 11, cached, reading(104, 1_003))
    fill(istore, 10, order, 0)
    chain = Settled(last_interval=0, last_at=0, last_wh=0)
    # A one-fill position whose only end reading is its baseline closes on the next one,
    # and spans its interval.
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=11)
    assert (position["closing"]["timestamp"], position["to_interval"]) == (1_003, 11)
    fill(istore, 11, order, 4)
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=11)
    assert position["baseline"]["timestamp"] == 1_000
    assert position["closing"]["timestamp"] == 1_003  # its own last fill's, newer
    assert (position["from_interval"], position["to_interval"], position["wh"]) == (10, 11, 4)


@pytest.mark.parametrize("status", ["sending", "failed"])
def test_fills_the_chain_settled_by_an_unfollowed_batch_are_marked_settled(istore, status):
    """The settling worker killed between its send and recording it (the batch stays
    'sending'), or a batch failed as forgotten and mined after all: the chain's last settled
    interval is past the fills, so their position would be refused NOT_AFTER_LAST forever."""
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    interval(istore, 10, reading(90, 998), reading(100, 1_000))
    interval(istore, 11, reading(100, 1_000), reading(104, 1_003))
    fill(istore, 10, order, 8)
    (row,) = istore.unsettled()
    batch = istore.add_batch(10, {"positions": [{"fill_ids": [row["id"]]}], "mints": []},
                             "0x", 5.0)
    istore.update_batch(batch, status=status)
    chain = Settled(last_interval=10, last_at=1_000, last_wh=100)
    assert batching(istore, chain).positions.build(istore.unsettled(), through_n=11) is None
    assert istore.unsettled() == []
    assert [f["settled_batch"] for f in istore.fills(10)] == [batch]
    assert istore.batches(status="mined")[0]["id"] == batch


def test_a_small_group_with_later_fills_behind_it_is_due(istore):
    """An order's fills billed 0 Wh (its board's bridge away, the relay open), then a new
    order's billed fills: the old group grows no more, and below SETTLE_WH it held the
    account's later fills until the day's end (the chaos day's bridge kill)."""
    old = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    new = istore.add_order(BUYER, "buy", {"meter": METER}, "0x02", "0xh2", 2.0)
    interval(istore, 10, reading(90, 998), reading(90, 999))
    interval(istore, 11, reading(90, 999), reading(120, 1_001))
    fill(istore, 10, old, 0)
    fill(istore, 11, new, 30)
    chain = Settled(last_interval=9, last_at=990, last_wh=90)
    made = batching(istore, chain)
    made.settings = Settings(settle_wh=1000)
    groups, behind = group_fills(istore.unsettled(), 11, made.boundaries.day)
    assert [f["order_id"] for f in groups[(BUYER, "buy")]] == [old]
    assert made._due(groups, behind, made.boundaries.day(11)) == [(BUYER, "buy")]
    position = made.positions.build(groups[(BUYER, "buy")], through_n=11)
    assert (position["wh"], position["to_interval"]) == (0, 10)


def test_a_first_position_without_its_first_start_reading_takes_the_next(istore):
    """A boundary without the board's signed reading (a restarted worker's cache empty, its
    bridge away) leaves a fill without a start reading, metered and billed 0: the account's
    first position took its baseline from that fill only, found none, and never settled."""
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    assert istore.claim(10, 10.0, "w", "clear")
    istore.clear_interval(10, 10, {"offers": [], "bids": [], "fills": [], "orders": []})
    istore.add_reading(10, METER, "end", reading(100, 1_000))
    interval(istore, 11, reading(100, 1_000), reading(110, 1_002))
    fill(istore, 10, order, 0)
    fill(istore, 11, order, 10)
    chain = Settled(last_interval=0, last_at=0, last_wh=0)
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=11)
    assert position["baseline"]["timestamp"] == 1_000
    assert (position["from_interval"], position["to_interval"], position["wh"]) == (10, 11, 10)


def test_a_first_position_spans_a_baseline_from_a_stale_cache(istore):
    """The contract bounds a first position's baseline age by (to - from + 2) intervals of
    block time (2 s here): a start reading 10 s older than the closing (the board's cache
    while the one worker its bridge served was down) is refused READING_OUT_OF_TIME unless
    the position spans more intervals, up to the account's next fill."""
    order = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    later = istore.add_order(BUYER, "buy", {"meter": METER}, "0x02", "0xh2", 2.0)
    interval(istore, 10, reading(90, 990), reading(100, 1_000))
    fill(istore, 10, order, 8)
    chain = Settled(last_interval=0, last_at=0, last_wh=0)
    mine = [f for f in istore.unsettled() if f["order_id"] == order]
    position = batching(istore, chain).positions.build(mine, through_n=20)
    assert position["to_interval"] == 13  # (13 - 10 + 2) * 2 s >= 10 s
    interval(istore, 12, reading(100, 1_000), reading(104, 1_003))
    fill(istore, 12, later, 4)
    position = batching(istore, chain).positions.build(mine, through_n=20)
    assert position["to_interval"] == 11  # the next fill stays after it


def test_a_group_without_an_end_reading_closes_on_a_later_one(istore):
    """A fill whose interval has no end reading of the meter (metered, so billed, 0): its
    group had no closing and held the account's later fills behind it for good."""
    old = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    new = istore.add_order(BUYER, "buy", {"meter": METER}, "0x02", "0xh2", 2.0)
    assert istore.claim(10, 10.0, "w", "clear")
    istore.clear_interval(10, 10, {"offers": [], "bids": [], "fills": [], "orders": []})
    istore.add_reading(10, METER, "start", reading(100, 1_000))
    interval(istore, 11, reading(100, 1_001), reading(110, 1_002))
    fill(istore, 10, old, 0)
    fill(istore, 11, new, 10)
    chain = Settled(last_interval=0, last_at=0, last_wh=0)
    mine = [f for f in istore.unsettled() if f["order_id"] == old]
    # Its only later reading ends the next order's fill: owing nothing, it needs no position.
    assert batching(istore, chain).positions.build(mine, through_n=11) is None
    assert [f["settled_batch"] for f in istore.fills(10)] == [NOTHING_OWED]
    position = batching(istore, chain).positions.build(istore.unsettled(), through_n=11)
    assert (position["baseline"]["timestamp"], position["closing"]["timestamp"]) == \
        (1_001, 1_002)
    assert (position["from_interval"], position["wh"]) == (11, 10)


def test_a_lagging_cache_never_moves_a_boundary_reading_back(istore):
    """Workers take turns at boundaries; one whose cache of a board lags (its bus away, a
    Redis restart) stored an older reading than the boundary before: that window went back to
    0 and the next counted its Wh again, billed beyond what its positions may claim."""
    assert istore.claim(10, 10.0, "w", "clear")
    istore.add_reading(10, METER, "start", reading(100, 1_000))
    cached = {"reading": SignedReading(METER, 90, 0, 998, b"\0" * 65)}
    step = BoundaryStep(istore, None, None, SimpleNamespace(signed=lambda b: cached["reading"]),
                        None, Settings(), Boundaries(900, 600))
    step.members = lambda: [{"board_id": "load-b", "meter_address": METER}]
    step._capture(11, 10)
    assert istore.readings(10)["end"][METER]["timestamp"] == 1_000
    assert istore.readings(11)["start"][METER]["timestamp"] == 1_000
    cached["reading"] = SignedReading(METER, 104, 0, 1_003, b"\0" * 65)
    step._capture(12, 11)  # a newer one is taken as it is
    assert istore.readings(11)["end"][METER]["timestamp"] == 1_003


def test_no_baseline_mint_for_a_producer_whose_sell_is_not_accounted_yet(istore):
    """A producer whose token baseline is pending (its first mint refused STALE after anvil
    went back) had one set by the batch's mint of its latest reading while its sell fill of
    the interval just ended was not accounted yet: the fill's Wh, counted from its start
    reading, lay before that baseline and never minted (73 Wh sold, 41 burned). Its fill
    counts as selling, accounted or not: its first position's baseline sets the counter."""
    from firmware_bridge.signing import SignedReading
    from marketplace.interval_minting import MeterMint

    order = istore.add_order(BUYER, "sell", {"meter": METER}, "0x01", "0xh1", 1.0)
    latest = SignedReading.from_json({**reading(130, 1_004), "signature": "0x" + "00" * 65})
    chain = Settled(last_interval=0, last_at=0, last_wh=0)
    chain.meter_mint = lambda meter: MeterMint(0, 0, 1_000, 1_000, baseline_pending=True)
    made = Batching(istore, SimpleNamespace(istore=istore), SimpleNamespace(intervals=chain),
                    clock=None, settings=Settings(), boundaries=Boundaries(900, 600),
                    members=lambda: [{"address": BUYER, "role": "producer", "board_id": "pv",
                                      "meter_address": latest.meter}],
                    signed=lambda board: latest)
    assert len(made._mints(set(), {}, set())) == 1  # no fill: it sets one
    istore.add_fill(11, BUYER, "sell", order, 5, 10)  # cleared, not accounted yet
    assert made._mints(set(), {}, set()) == []
