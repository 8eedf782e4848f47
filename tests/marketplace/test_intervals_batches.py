"""Interval settlement that keeps up (issue 16): as many batches a boundary as the due
positions fill, buys before sells, and sells the token would refuse NO_TOKENS held back or
cut before they are sent.

The pure parts (the token's mint caps mirrored, the chunking) are checked with numbers; the
boundary's several batches on a started portal (embedded chain, emulated boards at 600x, a
hand-moved clock) with MAX_POSITIONS set to 1, so five people's positions need several
batches at one boundary as a town's ~200 need several at 40 (the scale is the cap's, not the
people's: a 200-meter portal is bench/town.py's, far beyond a test's time).
"""

from __future__ import annotations

import pytest

from marketplace.interval_minting import MeterMint, mintable_wh, unminted_wh
from marketplace.intervals import batching
from tests.common import wait_for
from tests.marketplace.common import PEOPLE, community, drained, next_boundary

T = 1_796_157_753  # a reading's signed time (unix seconds)


def reading(wh_in: int, at: int, wh_out: int = 0) -> dict:
    return {"meter": "0xm", "whIn": wh_in, "whOut": wh_out, "timestamp": at}


def test_a_closing_mints_at_most_one_window_and_the_allowance():
    state = MeterMint(last_wh=100, last_at=T, rated_w=300, allowance_wh=300,
                      baseline_pending=False)
    assert state.window_wh == 300
    assert mintable_wh(state, reading(200, T + 3600), None) == 100  # its growth
    # 5 h of generation at 200 W against a 300 W rating: one window's 300 Wh mint.
    assert mintable_wh(state, reading(1100, T + 5 * 3600), None) == 300
    # Half an hour of signed time since the last minted reading: 150 Wh at most.
    assert mintable_wh(state, reading(1100, T + 1800), None) == 150
    drawn = MeterMint(100, T, 300, allowance_wh=40, baseline_pending=False)
    assert mintable_wh(drawn, reading(1100, T + 3600), None) == 40  # block-time allowance
    assert mintable_wh(state, reading(1100, T), None) == 0  # not newer: stale
    # While the token's baseline is pending the position's baseline sets the counter.
    pending = MeterMint(0, T - 100, 300, 300, baseline_pending=True)
    assert mintable_wh(pending, reading(1110, T + 486), reading(2, T)) == 40  # 486 s at 300 W
    assert mintable_wh(MeterMint(0, T - 100, 300 * 300, 300 * 300, True),
                       reading(1110, T + 486), reading(2, T)) == 1108


def test_unminted_generation_counts_from_the_baseline_and_within_one_window():
    pending = MeterMint(0, T, rated_w=150_000, allowance_wh=150_000, baseline_pending=True)
    # The town's producer44: 2 Wh counted before its first position's baseline never mint.
    assert unminted_wh(pending, 1110, baseline_wh=2) == 1108
    assert unminted_wh(pending, 1110, baseline_wh=None) == 0  # the next position starts now
    real = MeterMint(1000, T, rated_w=300, allowance_wh=300, baseline_pending=False)
    assert unminted_wh(real, 1200, None) == 200
    assert unminted_wh(real, 3000, None) == 300  # one reading mints one window at most


def sell(wh: int, closing: dict, baseline: dict | None = None) -> dict:
    return {"account": "0xs", "side": "sell", "wh": wh, "closing": closing,
            "baseline": baseline, "from_interval": 1, "to_interval": 2}


def test_a_sell_short_of_tokens_waits_for_the_caps_or_is_cut_to_what_was_minted():
    covered = batching._covered
    state = MeterMint(0, T, rated_w=300, allowance_wh=300, baseline_pending=False)
    ok = sell(250, reading(250, T + 3600))
    assert covered(ok, state, tokens=0) is ok
    # 1,000 Wh generated over 5 h at a 300 W rating: one window mints now, the rest later.
    assert covered(sell(1000, reading(1000, T + 5 * 3600)), state, tokens=0) is None
    assert covered(sell(1000, reading(1000, T + 5 * 3600)), state, tokens=700)["wh"] == 1000
    # The town's producer44: it sold 1,110 Wh, its meter counted 1,108 after the baseline.
    pending = MeterMint(0, T - 100, 90_000, 90_000, baseline_pending=True)
    cut = covered(sell(1110, reading(1110, T + 486, 1136), reading(2, T)), pending, tokens=0)
    assert cut["wh"] == 1108


def test_batches_take_buys_first_at_most_max_positions_each_and_mints_last():
    buys = [{"side": "buy", "n": i} for i in range(50)]
    sells = [{"side": "sell", "n": i} for i in range(30)]
    mints = [{"meter": f"0x{i}"} for i in range(5)]
    chunks = batching._chunks(sells + buys, mints)
    assert [len(p) + len(m) for p, m in chunks] == [40, 40, 5]
    flat = [p for chunk, _ in chunks for p in chunk]
    assert flat == buys + sells  # the pool is charged before it is drawn on
    assert chunks[-1] == ([], mints)
    many = [{"side": "buy"}] * (batching.MAX_POSITIONS * batching.MAX_BATCHES + 7)
    assert len(batching._chunks(many, [])) == batching.MAX_BATCHES


SETTINGS = {"PARTICIPANTS": PEOPLE, "SETTLE_WH": 20, "INTERVAL_TICK_S": 3600,
            "INTERVAL_WALL_S": 120}


@pytest.mark.parametrize("app", [SETTINGS], indirect=True)
def test_one_boundary_sends_every_due_position_in_several_batches(
        runtime, clock, monkeypatch):
    monkeypatch.setattr(batching, "MAX_POSITIONS", 1)
    market = runtime.market.intervals
    community(runtime, clock)
    for _ in range(4):  # fills accounted (one boundary after their interval ends)
        drained(runtime)
        next_boundary(runtime, clock)

    def settled_all() -> bool:
        market.step()
        return not market.istore.unsettled() and not market.istore.batches(status="sent")

    wait_for(settled_all, what="every accounted fill settled")
    mined = [b for b in market.istore.batches() if b["status"] == "mined"]
    by_boundary: dict[int, list[dict]] = {}
    for b in mined:
        by_boundary.setdefault(b["through_n"], []).append(b)
    # Several positions were due at one boundary and went out together, one a batch.
    assert max(len(v) for v in by_boundary.values()) >= 2, by_boundary
    for batches in by_boundary.values():
        sides = [p["side"] for b in batches for p in b["positions"]["positions"]]
        assert sides == sorted(sides), "buys before sells within a boundary"
        assert all(len(b["positions"]["positions"]) + len(b["positions"]["mints"]) == 1
                   for b in batches)
    events = [e for e in runtime.ledger.intervals.events(0) if e["event"] == "PositionRefused"]
    assert [e["args"]["reason_name"] for e in events] == []
