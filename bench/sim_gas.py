"""Where a simulated interval day's gas goes: by transaction kind, by batch and by position.

Reads a `gridbid simulate` report (its reconciliation.json: gas by kind, and every settle
batch's positions, mints, outcome and gas, from simulation.batch_gas) and prints:
- gas per delivered kWh by kind, setup apart;
- each settle batch: hour, positions (first/later × buy/sell), mints, refused, gasUsed vs
  its gas limit, calldata;
- a least-squares split of the batches' gasUsed into a base per batch and a cost per first
  buy, later buy, first sell, later sell, mint reading (with so few batches a split is a
  fit, not a measurement: bench/gas_intervals.py measures the kinds one by one).
Run: .venv/bin/python bench/sim_gas.py var/simulation/<run>[/intervals]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

KINDS = ("first buy", "later buy", "first sell", "later sell", "mint")


def kinds_of(batch: dict) -> Counter:
    """How many of each kind of position (and mint readings) a batch carried."""
    counts: Counter = Counter()
    for p in batch["positions"]:
        counts[f"{'first' if p['first'] else 'later'} {p['side']}"] += 1
    counts["mint"] = batch["mints"]
    return counts


def fit(batches: list[dict]) -> dict[str, float] | None:
    """Least-squares gas = base + Σ kind cost × count over the batches (None: too few)."""
    used = [k for k in KINDS if any(kinds_of(b)[k] for b in batches)]
    if len(batches) < len(used) + 1:
        return None
    a = np.array([[1.0] + [kinds_of(b)[k] for k in used] for b in batches])
    y = np.array([b["gas_used"] for b in batches], dtype=float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return dict(zip(["base", *used], coef, strict=True))


def report(market: dict) -> None:
    """Print the day's gas by kind, its batches and the per-position split."""
    kwh = market.get("day_kwh", market["delivered_wh"] / 1000)
    per = market["gas_per_delivered_kwh"]
    print(f"measured day: {kwh:.3f} kWh delivered; gas {market['day_gas']:,} = "
          f"{'–' if per is None else f'{per:,}'} per kWh")
    if market.get("warmup_hours"):
        wper = market["warmup_gas_per_kwh"]
        print(f"warm-up {market['warmup_hours']:g} h: {market['warmup_kwh']:.3f} kWh settled; "
              f"gas {market['warmup_gas']:,} = {'–' if wper is None else f'{wper:,}'} per kWh")
    print(f"first settlements: {market.get('first_positions')}")
    for phase in ("setup", "warmup", "day"):
        for kind, g in market["gas"].get(phase, {}).items():
            print(f"  {phase:<7}{kind:<22}{g['txs']:>6} txs{g['gas']:>14,}  "
                  f"{'–' if g['per_kwh'] is None else format(g['per_kwh'], ','):>10} /kWh")
    batches = market.get("batches") or []
    if not batches:
        print("no settle batches noted (a report from before simulation.batch_gas)")
        return
    print(f"\n{'phase':<7}{'hour':>6}{'gasUsed':>11}{'limit':>11}{'bytes':>7}  "
          + "".join(f"{k:>11}" for k in KINDS) + f"{'refused':>9}  gas/position")
    refused: Counter = Counter()
    for b in batches:
        counts = kinds_of(b)
        out = Counter(p["outcome"] for p in b["positions"] if p["outcome"] != "settled")
        refused.update(out)
        n = len(b["positions"]) or 1
        hour = "–" if b.get("hour") is None else f"{b['hour']:.2f}"
        print(f"{b.get('phase', ''):<7}{hour:>6}{b['gas_used']:>11,}{b['gas_limit']:>11,}"
              f"{b['calldata_bytes']:>7}  "
              + "".join(f"{counts[k]:>11}" for k in KINDS)
              + f"{sum(out.values()):>9}  {b['gas_used'] // n:,}")
    total = sum(b["gas_used"] for b in batches)
    positions = sum(len(b["positions"]) for b in batches)
    print(f"{len(batches)} batches, {positions} positions, {total:,} gas "
          f"({total // max(positions, 1):,} a position); refused: {dict(refused) or 'none'}")
    first = [p for b in batches for p in b["positions"] if p["first"]]
    print(f"first positions (baseline, order signature, new slots): {len(first)} of {positions}")
    split = fit(batches)
    if split:
        print("least-squares split of gasUsed: " + ", ".join(
            f"{k} {v:,.0f}" for k, v in split.items()))


def main() -> None:
    """Read the report directory named on the command line."""
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    path = root / "reconciliation.json"
    if not path.exists():
        path = root / "intervals" / "reconciliation.json"
    report(json.loads(path.read_text())["market"])


if __name__ == "__main__":
    main()
