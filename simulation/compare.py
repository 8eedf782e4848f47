"""Both market modes on the same seeded day, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulation.plan import ETHER, MARKETS

ROWS = [  # (label, figure key in the day's figures or its totals, format)
    ("Wh wanted", "wanted_wh", "{:,.0f}"),
    ("Wh served", "served_wh", "{:,.0f}"),
    ("served share", "served_share", "pct"),
    ("Wh matchable", "matchable_wh", "{:,.0f}"),
    ("served of matchable", "served_of_matchable", "pct"),
    ("Wh available above reserve", "available_wh", "{:,.0f}"),
    ("Wh sold", "sold_wh", "{:,.0f}"),
    ("sold of available", "sold_of_available", "pct"),
    ("consumers served nothing", "unserved_consumers", "{}"),
    ("welfare of the optimum", "welfare_of_optimum", "pct"),
    ("welfare (ETH)", "welfare_wei", "eth"),
    ("gas over the day (M)", "day_gas", "mgas"),
    ("gas per delivered kWh", "gas_per_delivered_kwh", "{:,}"),
    ("gas per delivered kWh by kind", "gas_by_kind", "kinds"),
    ("first settlements in the day", "first_positions", "first"),
    ("warm-up: gas per settled kWh", "warmup_gas_per_kwh", "{:,}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    if fmt == "pct":
        return f"{100 * value:.1f} %"
    if fmt == "eth":
        return f"{value / ETHER:.6f}"
    if fmt == "kinds":
        return "; ".join(f"{kind} {g['per_kwh']:,}" for kind, g in value.items()
                         if g["per_kwh"] is not None) or "–"
    if fmt == "first":
        return str(value.get("day", 0))
    if fmt == "mgas":
        return f"{value / 1e6:.2f}"
    return fmt.format(value)


def compare_table(figures: Mapping[str, Mapping[str, Any]], checks_ok: Mapping[str, bool]) -> str:
    """A Markdown table of each mode's figures (a column per market mode run)."""
    modes = [m for m in MARKETS if m in figures]
    lines = ["| figure | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for label, key, fmt in ROWS:
        cells = []
        for mode in modes:
            fig = figures[mode]
            value = fig.get("gas", {}).get("day") if key == "gas_by_kind" else fig["totals"].get(
                key, fig.get(key))
            cells.append(_cell(value, fmt))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| reconciliation | " + " | ".join(
        "holds" if checks_ok[m] else "FAILS" for m in modes) + " |")
    return "\n".join(lines)
