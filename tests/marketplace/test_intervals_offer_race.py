"""A seller's offer is never more than its tokens can cover when the settling worker follows
a batch while another worker's boundary reads the seller's books (issue 16, the chaos day:
sellers burned 1 Wh fewer than they sold, cut "only 0 Wh minted for it are burned").

The boundary read the seller's tokens on chain, then its unsettled sold Wh in the store: a
batch mined before the first read and marked settled before the second was counted by
neither, so the seller offered its burn again. The store is real (SQLite and PostgreSQL);
the chain is a stand-in whose token balance answers as the chain did, the batch's burn
mined, and marks the fills settled meanwhile, as the other worker's Batching._follow does.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from firmware_bridge.signing import SignedReading
from marketplace.interval_minting import MeterMint
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.step import BoundaryStep
from marketplace.intervals.store import INTERVALS, IntervalStore
from marketplace.settings import Settings

SELLER = "0x00000000000000000000000000000000000000a1"
METER = "0x00000000000000000000000000000000000000aa"
BOARD = "pv-a"



class Chain:
    """The seller's chain state: 50 tokens read just before its batch's burn of 30 was
    mined; then the settling worker marks that batch's fills settled (the race)."""

    def __init__(self, istore: IntervalStore, batch_id: int):
        self.istore, self.batch_id = istore, batch_id
        self.intervals = SimpleNamespace(meter_mint=lambda meter: MeterMint(
            last_wh=500, last_at=1_000, rated_w=10_000, allowance_wh=10_000,
            baseline_pending=False))

    def token_balance(self, address: str) -> int:
        self.istore.mark_settled([f["id"] for f in self.istore.unsettled(address)],
                                 self.batch_id)
        return 50


def test_a_batch_followed_between_the_boundarys_reads_is_not_offered_again(istore):
    istore.db.add_participant(SELLER, "alice", "producer", BOARD, METER)
    istore.request_mode(SELLER, INTERVALS)
    istore.switch_mode(SELLER, INTERVALS, 1)
    order = istore.add_order(SELLER, "sell", {"meter": METER}, "0x01", "0xh1", 1.0)
    assert istore.claim(10, 10.0, "w", "clear")
    istore.add_fill(10, SELLER, "sell", order, 30, 10)
    (fill,) = istore.fills(10)
    istore.account_fill(fill["id"], 30, 30, 300)  # sold 30 Wh, in a batch being mined
    batch_id = istore.add_batch(10, {"positions": [], "mints": []}, None, 0.0)
    switchboard = SimpleNamespace(signed=lambda board: SignedReading(METER, 500, 0, 1_010, b""))
    step = BoundaryStep(istore, orders=None, ledger=Chain(istore, batch_id),
                        switchboard=switchboard, hub=None, settings=Settings(),
                        boundaries=Boundaries(900, 600))
    step._capture(11, 10)
    known = step._chain_inputs()[SELLER]
    # 20 tokens left once burned and nothing unminted (its meter counted what was minted):
    # at most 20 Wh, not the 50 it held before the burn.
    assert step._uncommitted(SELLER, step.members()[0], known, 11) <= 20


def test_a_sell_accounted_between_the_offers_reads_is_not_offered_again(istore, monkeypatch):
    """The boundary worker accounts the seller's fill of the interval just ended while
    another worker's boundary makes its offer: _uncommitted read the sells accounted and not
    settled, then the sells not accounted, and a fill accounted between the two was in
    neither, so its 30 Wh were offered again beyond the seller's 50 tokens."""
    istore.db.add_participant(SELLER, "alice", "producer", BOARD, METER)
    istore.request_mode(SELLER, INTERVALS)
    istore.switch_mode(SELLER, INTERVALS, 1)
    order = istore.add_order(SELLER, "sell", {"meter": METER}, "0x01", "0xh1", 1.0)
    assert istore.claim(10, 10.0, "w", "clear")
    istore.add_fill(10, SELLER, "sell", order, 30, 10)  # sold 30 Wh, not accounted yet
    (fill,) = istore.fills(10)
    ledger = SimpleNamespace(token_balance=lambda address: 50, intervals=SimpleNamespace(
        meter_mint=lambda meter: MeterMint(last_wh=500, last_at=1_000, rated_w=10_000,
                                           allowance_wh=10_000, baseline_pending=False)))
    switchboard = SimpleNamespace(signed=lambda board: SignedReading(METER, 500, 0, 1_010, b""))
    step = BoundaryStep(istore, orders=None, ledger=ledger, switchboard=switchboard, hub=None,
                        settings=Settings(), boundaries=Boundaries(900, 600))
    step._capture(11, 10)
    known = step._chain_inputs()[SELLER]
    unsettled = istore.unsettled

    def then_accounted(address=None):
        rows = unsettled(address)
        if sys._getframe(1).f_code.co_name == "_uncommitted":  # its read of accounted sells
            istore.account_fill(fill["id"], 30, 30, 300)  # the boundary worker commits
        return rows

    monkeypatch.setattr(istore, "unsettled", then_accounted)
    assert step._uncommitted(SELLER, step.members()[0], known, 11) <= 20


def test_generation_signed_after_the_boundary_s_reading_is_not_offered(istore):
    """The chaos day's seller that settled 154 of its 156 Wh: the boundary stored the meter's
    reading (whIn 500, all minted), then the board signed a newer one (whIn 560) before the
    offers were made, and the offer counted its 60 Wh of generation. The fill's position
    closes on the next boundary's reading, which may be the stored one again (that worker's
    cache lagged: its bus reconnecting after a Redis restart): tokens plus what it mints
    then cover 50 Wh, and the sell was cut to them. Offered: what the stored reading and
    the tokens cover."""
    istore.db.add_participant(SELLER, "alice", "producer", BOARD, METER)
    istore.request_mode(SELLER, INTERVALS)
    istore.switch_mode(SELLER, INTERVALS, 1)
    istore.add_order(SELLER, "sell", {"meter": METER}, "0x01", "0xh1", 1.0)
    ledger = SimpleNamespace(token_balance=lambda address: 50, intervals=SimpleNamespace(
        meter_mint=lambda meter: MeterMint(last_wh=500, last_at=1_000, rated_w=10_000,
                                           allowance_wh=10_000, baseline_pending=False)))
    cache = {"reading": SignedReading(METER, 500, 0, 1_010, b"")}
    switchboard = SimpleNamespace(signed=lambda board: cache["reading"])
    step = BoundaryStep(istore, orders=None, ledger=ledger, switchboard=switchboard, hub=None,
                        settings=Settings(), boundaries=Boundaries(900, 600))
    known = step._chain_inputs()[SELLER]
    step._capture(11, 10)
    cache["reading"] = SignedReading(METER, 560, 0, 1_020, b"")  # signed after the capture
    assert step._uncommitted(SELLER, step.members()[0], known, 11) == 50


BUYER = "0x00000000000000000000000000000000000000b1"


@pytest.mark.parametrize("read", ["spent_since", "unsettled"])
def test_a_buy_accounted_between_the_bids_reads_is_counted(istore, monkeypatch, read):
    """The buyer's side of the race above: a boundary's bid read the day's accounted buys
    (spent_since) or the escrow's owed ones (unsettled), then the buys not accounted yet; a
    fill of 30 Wh (30 000 wei) accounted between the two was in neither, so the bid went
    past the daily budget left (20 000 wei) or the free balance (50 000 less 30 000 owed)."""
    order = {"capWeiPerKWh": 1_000_000, "expectedWh": 100, "maxWhPerInterval": 0,
             "dailyBudgetWei": 50_000 if read == "spent_since" else 0}
    order_id = istore.add_order(BUYER, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    assert istore.claim(10, 10.0, "w", "clear")
    istore.add_fill(10, BUYER, "buy", order_id, 30, 1_000_000)  # not accounted yet
    (fill,) = istore.fills(10)
    step = BoundaryStep(istore, orders=SimpleNamespace(typed_order=lambda row: row["order"]),
                        ledger=None, switchboard=None, hub=None, settings=Settings(),
                        boundaries=Boundaries(900, 600))
    reader = getattr(istore, read)

    def then_accounted(*args):
        rows = reader(*args)
        if sys._getframe(1).f_code.co_name == "_quantity":
            istore.account_fill(fill["id"], 30, 30, 30_000)  # the boundary worker commits
        return rows

    monkeypatch.setattr(istore, read, then_accounted)
    free = 50_000 if read == "unsettled" else 10**18
    wh, _ = step._quantity({"owner": BUYER, "kind": "buy", "order": order}, {}, 11,
                           {"free": free})
    assert wh <= 20
