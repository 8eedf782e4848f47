"""The day's figures beside its books: the market's purpose measured, gas by kind, prices."""

from __future__ import annotations

from typing import Any

from simulation.day import TradingDay
from simulation.journal import DAY, SETUP, WARMUP
from simulation.metrics import FIELDS, measure
from simulation.reconcile import Reconciliation


def day_figures(day: TradingDay, books: Reconciliation, prices_wei: list[int],
                sold_wh: dict[str, int]) -> dict[str, Any]:
    """Wanted/served/available/sold/matchable into the books' rows; the day's figures.

    sold_wh: by name, what each producer was paid for (its burned tokens); prices are the
    market mode's clearing prices (a deal's, an interval's), wei per kWh.
    """
    by_name = {p["name"]: p for p in day.people}
    sold = {by_name[name]["address"]: wh for name, wh in sold_wh.items()}
    rows, total = measure(day.people, day.stepper.boundaries, sold)
    for row in books.rows:
        row.update(rows[by_name[row["name"]]["address"]])
    books.total.update({k: total[k] for k in FIELDS})
    batches = day.journal.batches
    # After a warm-up the day's kWh are what its own batches settled (chain events); the
    # warm-up's apart. Without one, every delivered Wh is the day's.
    day_wh = settled_wh(batches, DAY) if day.plan.warmup_hours else books.total["delivered_wh"]
    kwh = day_wh / 1000
    warmup_kwh = settled_wh(batches, WARMUP) / 1000
    gas = {phase: {kind: {"txs": n, "gas": used,
                          "per_kwh": round(used / per) if (per := kwh if phase != WARMUP
                                                            else warmup_kwh) else None}
                   for kind, (n, used) in sorted(day.journal.gas[phase].items(),
                                                 key=lambda kv: -kv[1][1])}
           for phase in (SETUP, WARMUP, DAY)}
    first, last = day.stepper.boundaries[0]["physics"], day.stepper.boundaries[-1]["physics"]
    # The day's weather and loads, from the emulator: the same for one seed in either market.
    physics = {p["name"]: {k: round(last[p["board"]][k] - first[p["board"]][k], 6)
                           for k in ("pv_wh", "wanted_wh") if k in last[p["board"]]}
               for p in day.people}
    day_gas = sum(used for _, used in day.journal.gas[DAY].values())
    warmup_gas = sum(used for _, used in day.journal.gas[WARMUP].values())
    return {
        "market": day.plan.market, "seed": day.plan.seed, "totals": total,
        "delivered_wh": books.total["delivered_wh"],
        "gas": gas, "day_gas": day_gas, "day_kwh": kwh,
        "gas_per_delivered_kwh": round(day_gas / kwh) if kwh else None,
        "warmup_hours": day.plan.warmup_hours, "warmup_gas": warmup_gas,
        "warmup_kwh": warmup_kwh,
        "warmup_gas_per_kwh": round(warmup_gas / warmup_kwh) if warmup_kwh else None,
        "first_positions": {phase: sum(p["first"] for b in batches if b["phase"] == phase
                                       for p in b["positions"]) for phase in (WARMUP, DAY)},
        "batches": [{**b, "hour": None if b["at"] is None else round(day.hour(b["at"]), 3)}
                    for b in day.journal.batches],
        "prices_wei": prices_wei, "physics": physics,
        "boundaries": day.stepper.boundaries,  # report.py writes them to physics.json
    }


def settled_wh(batches: list[dict[str, Any]], phase: str) -> int:
    """Wh the buy positions of a phase's batches settled (delivered and paid for)."""
    return sum(p["wh"] for b in batches if b["phase"] == phase for p in b["positions"]
               if p["side"] == "buy" and p["outcome"] == "settled")
