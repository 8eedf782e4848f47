"""Batching on the settlement lease's holder while another worker accounts (review4): with two
workers the one that claimed a boundary accounts the interval before the one just ended while
the lease holder builds that boundary's batches, so a fill can move from not accounted to
accounted between two of the batcher's reads of the store.

The store is real (SQLite and PostgreSQL); the chain's answers (a producer meter whose token
baseline is pending) are given by a stand-in ledger, as in test_intervals_closing.py, and the
other worker's accounting is done (account_fill, as Accounting.account does) at the point of
the batcher's build where the boundary worker's commit lands.
"""

from __future__ import annotations

from types import SimpleNamespace

from firmware_bridge.signing import SignedReading
from marketplace.interval_minting import MeterMint
from marketplace.intervals.batching import Batching
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.store import IntervalStore
from marketplace.settings import Settings
from tests.marketplace.test_intervals_closing import Settled

METER = "0x00000000000000000000000000000000000000aa"
ACCOUNT = "0x00000000000000000000000000000000000000b0"


def reading(wh: int, at: int) -> dict:
    return {"meter": METER, "whIn": wh, "whOut": 0, "timestamp": at, "signature": "0x"}


class Chain:
    """The contract's answers: the producer's meter has no token baseline yet; a batch sent is
    kept (its mint readings are what the test looks at)."""

    def __init__(self):
        self.sent: list = []

    def meter_mint(self, meter: str) -> MeterMint:
        return MeterMint(0, 0, 1_000, 1_000, baseline_pending=True)

    def pool_wei(self) -> int:
        return 0

    def sign(self, batch):
        return SimpleNamespace(operator_sig=b"\0" * 65)

    def settle_async(self, batch, sender=None):
        self.sent.append(batch)
        return SimpleNamespace(tx_hash="0x" + "11" * 32)



def interval(istore: IntervalStore, n: int, start: dict, end: dict) -> None:
    assert istore.claim(n, float(n), "w", "clear")
    istore.clear_interval(n, 10, {"offers": [], "bids": [], "fills": [], "orders": []})
    istore.add_reading(n, METER, "start", start)
    istore.add_reading(n, METER, "end", end)


def test_no_baseline_mint_when_the_sell_is_accounted_while_the_batch_is_built(istore):
    """A producer's first sell fill (interval 10; none in 11), its token baseline pending.
    Lease holder A builds boundary 11's batches: its unsettled() read finds the fill not
    accounted yet (so in no group); the boundary worker B accounts interval 10 meanwhile;
    A's _selling then asks for fills not accounted and finds it accounted. The producer
    counts as selling by neither read, and A's batch mints its latest reading, which sets
    the token's baseline after the fill's start: the fill's Wh never mint and its sell is
    cut (as in 282c31e's chaos day: "only N Wh minted for it are burned")."""
    order = istore.add_order(ACCOUNT, "sell", {"meter": METER}, "0x01", "0xh1", 1.0)
    interval(istore, 10, reading(100, 1_000), reading(130, 1_002))
    interval(istore, 11, reading(130, 1_002), reading(131, 1_004))
    istore.add_fill(10, ACCOUNT, "sell", order, 30, 10)  # cleared, accounted by B below
    (sold,) = istore.fills(10)
    latest = SignedReading.from_json({**reading(131, 1_004), "signature": "0x" + "00" * 65})
    chain = Chain()
    a = Batching(istore, SimpleNamespace(istore=istore), SimpleNamespace(intervals=chain),
                 clock=SimpleNamespace(now=lambda: 0.0), settings=Settings(),
                 boundaries=Boundaries(900, 600),
                 members=lambda: [{"address": ACCOUNT, "role": "producer", "board_id": "pv",
                                   "meter_address": latest.meter}],
                 signed=lambda board: latest)
    with_tokens = a._with_tokens

    def while_b_accounts(positions):
        istore.account_fill(sold["id"], 30, 30, 300)  # B's boundary commits interval 10
        return with_tokens(positions)

    a._with_tokens = while_b_accounts
    a.step(11)
    minted = [r for batch in chain.sent for r in batch.mints]
    assert minted == [], "a baseline mint went while the producer's first sell waits"


def test_a_stale_closing_never_passes_a_fill_accounted_while_it_searches(istore):
    """31aee7b's case (a stale position's search for a newer closing must stop before the
    account's fill of the interval just ended), with the boundary worker's accounting of that
    fill committing between _pending's two reads: the search passes it, closes on its
    interval's end reading, and the chain settles that interval without the fill's Wh."""
    order = istore.add_order(ACCOUNT, "buy", {"meter": METER}, "0x01", "0xh1", 1.0)
    settled = reading(100, 1_000)
    interval(istore, 10, reading(90, 998), settled)  # its end: the reading it settled on
    interval(istore, 11, settled, reading(105, 1_004))
    istore.add_fill(10, ACCOUNT, "buy", order, 8, 10)
    (first,) = istore.fills(10)
    istore.account_fill(first["id"], 8, 8, 80)
    istore.add_fill(11, ACCOUNT, "buy", order, 5, 10)  # cleared; B accounts it below
    (later,) = istore.fills(11)
    chain = Settled(last_interval=9, last_at=1_000, last_wh=92)
    a = Batching(istore, SimpleNamespace(istore=istore), SimpleNamespace(intervals=chain),
                 clock=None, settings=Settings(), boundaries=Boundaries(900, 600),
                 members=lambda: [], signed=lambda board: None)
    groups = istore.unsettled()  # A's read: interval 11's fill not accounted yet
    unsettled = istore.unsettled

    def then_b_accounts(address=None):
        rows = unsettled(address)
        if address is not None:
            istore.account_fill(later["id"], 5, 5, 50)  # B's boundary commits
        return rows

    istore.unsettled = then_b_accounts
    assert a.positions.build(groups, through_n=11) is None, "closed past the fill of 11"
