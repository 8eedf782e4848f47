"""The day's purpose measured from physics notes: wanted, served, available, sold, matchable."""

from __future__ import annotations

import math

from firmware_bridge.emulator.microgrid import LINE_LOSS
from simulation.compare import compare_table
from simulation.metrics import interval_book, measure

PEOPLE = [
    {"name": "p1", "address": "0xP1", "board": "pv1", "role": "producer", "reserve_wh": 100,
     "reserve_wei": 10_000},
    {"name": "c1", "address": "0xC1", "board": "ld1", "role": "consumer", "limit_wei": 30_000},
    {"name": "c2", "address": "0xC2", "board": "ld2", "role": "consumer", "limit_wei": 5_000},
]


def note(t: float, stored: float, pv_in: float, out: float, c1: tuple[float, float],
         c2: tuple[float, float]) -> dict:
    """A boundary note: the battery, its meter, each load's wanted Wh and meter in."""
    return {"t": t, "line_loss_wh": 0.0, "physics": {
        "pv1": {"stored_wh": stored, "wh_in": pv_in, "wh_out": out, "pv_wh": pv_in,
                "capacity_wh": 1200.0, "max_discharge_w": 600.0},
        "ld1": {"wanted_wh": c1[0], "wh_in": c1[1], "wh_out": 0.0},
        "ld2": {"wanted_wh": c2[0], "wh_in": c2[1], "wh_out": 0.0},
    }}


def test_the_true_book_of_an_interval() -> None:
    before = note(900, 300.0, 500.0, 100.0, (0, 0), (0, 0))["physics"]
    after = note(1800, 250.0, 540.0, 190.0, (60.4, 50.0), (30.0, 0.0))["physics"]
    bids, offers = interval_book(PEOPLE, before, after, 900, {"0xP1": 400.0})
    # Wanted: whole Wh at each cap; sellable: 200 above reserve + 40 stored, within 150 Wh
    # (600 W for a quarter hour) and the 400 Wh generated unsold + 40 stored.
    assert [(b.buyer, b.wh, b.cap) for b in bids] == [("0xC1", 60, 30_000), ("0xC2", 30, 5_000)]
    assert [(o.seller, o.wh, o.floor) for o in offers] == [("0xP1", 150, 10_000)]
    # Only metered generation is sellable (the line loss on top): with none unsold, what it
    # stores now.
    _, offers = interval_book(PEOPLE, before, after, 900, {"0xP1": 0.0})
    assert offers[0].wh == math.floor(40 / (1 - LINE_LOSS))


def test_measure_counts_the_day_and_matches_only_above_the_floor() -> None:
    boundaries = [note(0, 300.0, 0.0, 0.0, (0, 0), (0, 0)),
                  note(900, 250.0, 140.0, 90.0, (60.4, 50.0), (30.0, 0.0)),
                  note(1800, 220.0, 170.0, 120.0, (100.0, 80.0), (60.0, 0.0))]
    rows, total = measure(PEOPLE, boundaries, {"0xP1": 78})

    c1, c2, p1 = rows["0xC1"], rows["0xC2"], rows["0xP1"]
    assert (c1["wanted_wh"], c1["served_wh"], c1["served_share"]) == (100.0, 80.0, 0.8)
    assert c2["matchable_wh"] == 0  # its cap is under the seller's floor: never matchable
    assert c1["matchable_wh"] == 60 + 39  # every Wh it wanted (39.6 → 39 whole)
    # The producer sends what c1 receives plus the line loss, rounded up per interval.
    assert p1["matchable_wh"] == math.ceil(60 / (1 - LINE_LOSS)) + math.ceil(39 / (1 - LINE_LOSS))
    assert p1["available_wh"] == 170.0 and p1["sold_wh"] == 78
    assert total["served_of_matchable"] == round(80 / 99, 4)
    assert total["unserved_consumers"] == 1
    # Welfare at the limits: metered (c1 in at its cap less p1 out at its floor) vs optimum.
    assert total["welfare_wei"] == 30_000 * 80 // 1000 - 10_000 * 120 // 1000
    assert 0 < total["welfare_of_optimum"] < 1


def test_compare_prints_both_markets_side_by_side() -> None:
    fig = {"totals": {"wanted_wh": 1000, "served_wh": 900, "served_share": 0.9,
                      "served_of_matchable": 0.95, "welfare_wei": 10**15},
           "day_gas": 3_000_000, "gas_per_delivered_kwh": 80_000,
           "gas": {"day": {"settle": {"txs": 3, "gas": 2_900_000, "per_kwh": 77_000},
                           "withdrawOwed": {"txs": 1, "gas": 100_000, "per_kwh": 3_000}}},
           "first_positions": {"warmup": 40, "day": 2}}
    table = compare_table({"lots": {**fig, "gas_per_delivered_kwh": None, "gas": {}},
                           "intervals": fig}, {"lots": True, "intervals": False})
    assert table.splitlines()[0] == "| figure | intervals | lots |"
    assert "| served of matchable | 95.0 % | 95.0 % |" in table
    assert "| gas per delivered kWh | 80,000 | – |" in table
    assert "| gas per delivered kWh by kind | settle 77,000; withdrawOwed 3,000 | – |" in table
    assert "| first settlements in the day | 2 | 2 |" in table
    assert "| reconciliation | FAILS | holds |" in table


def test_a_batch_settling_the_warm_up_counts_there_and_kwh_are_its_settled_buys() -> None:
    from simulation.figures import settled_wh
    from simulation.journal import DAY, WARMUP, phase_of

    def batch(phase: str, *positions: tuple[str, int, int, str]) -> dict:
        return {"phase": phase, "positions": [
            {"side": side, "to_interval": to, "wh": wh, "outcome": outcome}
            for side, to, wh, outcome in positions]}

    warm = batch(DAY, ("buy", 99, 300, "settled"), ("sell", 99, 310, "settled"))
    day = batch(DAY, ("buy", 99, 50, "settled"), ("buy", 100, 200, "settled"),
                ("buy", 101, 70, "POOL_SHORT"))
    assert phase_of(warm, DAY, 100) == WARMUP  # mined in the day, settles the warm-up's end
    assert phase_of(day, DAY, 100) == DAY  # one of its positions reaches the day
    assert phase_of(warm, DAY, None) == DAY  # no warm-up: the phase it was mined in
    assert phase_of(batch(DAY), WARMUP, 100) == WARMUP  # mints only: when mined
    warm["phase"] = WARMUP
    assert settled_wh([warm, day], DAY) == 250  # buys settled, not sells nor refused
    assert settled_wh([warm, day], WARMUP) == 300
