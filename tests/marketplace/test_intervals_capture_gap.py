"""Review of 839b804: an offer for interval n counts generation up to n's stored start reading,
on the claim that every position over n's fill closes on that reading or a later one
(_capture never stores a reading older than the previous boundary's start). The guard looks
one boundary back only: a boundary that stored nothing for the meter (its worker had no
signed reading of the board: its bus reconnecting) lets the next, lagging one store an
older reading, and a group holding n's fill closes on it."""

from __future__ import annotations

from types import SimpleNamespace

from firmware_bridge.signing import SignedReading
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import SELL
from marketplace.intervals.positions import Positions
from marketplace.intervals.step import BoundaryStep
from marketplace.intervals.store import INTERVALS
from marketplace.settings import Settings

from .test_intervals_offer_race import BOARD, METER, SELLER


def _boundaries(istore, cache_by_n):
    """Boundaries n = 10.. with the board's cache as each boundary's worker saw it."""
    cache = {"reading": None}
    step = BoundaryStep(istore, orders=None, ledger=None,
                        switchboard=SimpleNamespace(signed=lambda board: cache["reading"]),
                        hub=None, settings=Settings(), boundaries=Boundaries(900, 600))
    prev = None
    for n, reading in cache_by_n:
        assert istore.claim(n, float(n), "w", "clear")
        cache["reading"] = reading
        step._capture(n, prev)
        prev = n
    return step


R4 = SignedReading(METER, 540, 140, 1_040, b"")  # an older reading a lagging cache still holds
R5 = SignedReading(METER, 550, 150, 1_050, b"")
R6 = SignedReading(METER, 560, 160, 1_060, b"")


def test_a_boundary_without_a_reading_lets_the_next_store_an_older_one(istore):
    istore.db.add_participant(SELLER, "alice", "producer", BOARD, METER)
    istore.request_mode(SELLER, INTERVALS)
    istore.switch_mode(SELLER, INTERVALS, 1)
    # 10: fresh (R5); 11: R6; 12: that worker has no reading of the board; 13: lagging (R4).
    _boundaries(istore, [(10, R5), (11, R6), (12, None), (13, R4)])
    newest = max(int(r["timestamp"]) for n in (10, 11)
                 for r in istore.readings(n)["start"].values())
    assert int(istore.readings(12)["end"][METER]["timestamp"]) >= newest
    assert int(istore.readings(13)["start"][METER]["timestamp"]) >= newest


def test_a_sell_group_closes_on_a_reading_older_than_its_offer_counted(istore):
    """Fills at 10 (its offer counted R5's whIn, 550) and 12 (no start reading: billed 0, but
    an end reading, R4): the group closes on the last fill with an end reading, R4 (whIn
    540), so its mint covers 10 Wh less than the offer at 10 counted."""
    istore.db.add_participant(SELLER, "alice", "producer", BOARD, METER)
    istore.request_mode(SELLER, INTERVALS)
    istore.switch_mode(SELLER, INTERVALS, 1)
    order = istore.add_order(SELLER, "sell", {"meter": METER, "floorWeiPerKWh": 1}, "0x01",
                             "0xh1", 1.0)
    _boundaries(istore, [(10, R5), (11, R6), (12, None), (13, R4)])
    counted = int(istore.readings(10)["start"][METER]["whIn"])  # what _uncommitted(…, 10) used
    istore.add_fill(10, SELLER, SELL, order, 10, 10**15)
    istore.add_fill(12, SELLER, SELL, order, 5, 10**15)
    fills = [f for f in istore.not_settled(SELLER) if f["side"] == SELL]
    for f in fills:
        billed = 10 if f["n"] == 10 else 0
        istore.account_fill(f["id"], billed, billed, billed * 10**12)
    fills = [f for f in istore.not_settled(SELLER) if f["side"] == SELL]
    ledger = SimpleNamespace(intervals=SimpleNamespace(
        position_of=lambda account, meter: {"last_interval": 5, "last_at": 900},
        order_state=lambda h: {"state": "verified"}))
    positions = Positions(istore, ledger, Settings(), Boundaries(900, 600),
                          on_chain=lambda fills: True)
    built = positions.build(sorted(fills, key=lambda f: f["n"]), through_n=12)
    assert built is not None and 10 in {f["n"] for f in fills if f["id"] in built["fill_ids"]}
    assert int(built["closing"]["whIn"]) >= counted
