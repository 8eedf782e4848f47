"""The simulated day's summary.md: the verdict, the findings and the tables, read in a minute."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from marketplace.contract_enums import CLOSE_REASONS
from simulation.load import load_section
from simulation.plan import ETHER, Plan
from simulation.plan import MILLI_ETH_PER_KWH as MILLI
from simulation.plots import PLOTS
from simulation.reconcile import COLUMNS, Reconciliation


def summary(
    plan: Plan, books: Reconciliation, names: dict[str, str],
    hour_of: Callable[[float], float], samples: list[dict[str, Any]], wall_s: float,
) -> str:
    """The Markdown of summary.md."""
    if plan.market == "intervals":
        lines = [*_opening(plan, books, samples, wall_s), *_purpose(books),
                 *load_section(books.figures.get("load")),
                 *_table(books, "Interval fills and settlement per participant"),
                 *_plots(), *_disagreeing(books), *_checks(books)]
    else:
        lines = [
            *_opening(plan, books, samples, wall_s),
            *_purpose(books),
            *load_section(books.figures.get("load")),
            *_findings(books),
            *_participants(books),
            *_plots(),
            *_disagreeing(books),
            *_checks(books),
            *_deals(books, names, hour_of),
        ]
    return "\n".join(lines) + "\n"


def _table(books: Reconciliation, title: str) -> list[str]:
    """The rows as they are (wei in ETH), a column per key, and the total."""
    keys = [k for k in books.rows[0] if k not in ("name", "role")]
    body = []
    for row in [*books.rows, books.total]:
        cells = [_eth(row[k]) if k.endswith("_wei") else
                 "–" if row.get(k) is None else
                 (f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k])) for k in keys]
        body.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return [f"## {title}", "", "| participant | " + " | ".join(
        k.replace("_wei", " (ETH)").replace("_", " ") for k in keys) + " |",
        "|---|" + "---:|" * len(keys), *body, ""]


def _clock(hour: float) -> str:
    minutes = round(hour * 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _eth(wei: int | float) -> str:
    return f"{wei / ETHER:.6f}"


def _opening(plan: Plan, books: Reconciliation, samples: list[dict[str, Any]],
             wall_s: float) -> list[str]:
    """The title, how the day ran, and the verdict."""
    deals = books.deals
    steps = sum(d["steps_count"] for d in deals)
    rounding = sum(d["rounding_wei"] for d in deals)
    first, last = (samples[0]["hour"], samples[-1]["hour"]) if samples else (0.0, 0.0)
    failed = books.failures()
    if plan.market == "intervals":
        rounding_line = ("energy to the meters' whole Wh, balances to 0 wei: every interval's "
                         "readings, fills, payouts and line loss, and every settled position.")
    else:
        rounding_line = (f"energy and tokens to 0 Wh, balances to 0 wei, payments within 1 wei "
                         f"per delivery step (the escrow's rounding down came to "
                         f"{rounding:.3f} wei over {steps} steps in {len(deals)} deals).")
    verdict = (f"**Reconciliation holds**: all {len(books.checks)} checks agree"
               if not failed else
               f"**Reconciliation FAILS**: {len(failed)} of {len(books.checks)} checks disagree")
    return [
        f"# A day on the microgrid: {plan.producers} producers, {plan.consumers} consumers, "
        f"{plan.hours:g} h, {plan.market} market (seed {plan.seed})",
        "",
        f"Simulated on {datetime.now():%Y-%m-%d %H:%M} through the real stack (chain "
        f"`{plan.chain}`, contracts, boards on ptys behind the serial bridge, the market) at "
        f"×{plan.speed:g} emulated time; trading ran {last - first:.1f} h from "
        f"{_clock(first)}, the whole run took {wall_s:.0f} s.",
        "",
        f"{verdict} — {rounding_line}",
        "",
    ]


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %"


def _purpose(books: Reconciliation) -> list[str]:
    """What the market achieved: Wh wanted, served, available, sold, matchable; gas by kind."""
    fig = books.figures
    if not fig:
        return []
    t = fig["totals"]
    lines = [
        f"## What the {fig['market']} market achieved", "",
        f"- Loads wanted {t['wanted_wh'] / 1000:.2f} kWh and were served "
        f"{t['served_wh'] / 1000:.2f} kWh ({_pct(t['served_share'])}; self-sufficiency "
        f"{_pct(t['self_sufficiency'])}: no grid is behind the bus); "
        f"{t['unserved_consumers']} consumers got nothing.",
        f"- **Served {_pct(t['served_of_matchable'])} of matchable** "
        f"({t['matchable_wh'] / 1000:.2f} kWh: the welfare-maximal clearing, every interval, of "
        "the true wanted Wh at each cap against the true Wh above reserve at each floor, line "
        "loss included).",
        f"- Batteries had {t['available_wh'] / 1000:.2f} kWh above reserve over the day; "
        f"{t['sold_wh'] / 1000:.2f} kWh were sold ({_pct(t['sold_of_available'])}).",
        f"- Welfare at the participants' limits: {_eth(t['welfare_wei'])} ETH metered against "
        f"{_eth(t['optimum_welfare_wei'])} ETH at the optimum ({_pct(t['welfare_of_optimum'])}).",
        f"- Gas: {fig['day_gas'] / 1e6:.2f} M over the day, "
        + (f"**{fig['gas_per_delivered_kwh']:,} gas per delivered kWh**"
           if fig["gas_per_delivered_kwh"] is not None else "nothing delivered")
        + (" (setup apart)." if not fig.get("warmup_hours") else
           f" over the measured day's {fig['day_kwh']:.2f} kWh settled (setup and the "
           f"{fig['warmup_hours']:g} h warm-up apart).")
        + f" Participants' first settlements in it: {fig['first_positions']['day']}.",
        *([f"- Warm-up ({fig['warmup_hours']:g} h before the day, {fig['warmup_kwh']:.2f} kWh "
           f"settled, {fig['first_positions']['warmup']} first settlements: each account's "
           f"baseline, order signature and new slots): {fig['warmup_gas'] / 1e6:.2f} M gas, "
           + (f"{fig['warmup_gas_per_kwh']:,}" if fig["warmup_gas_per_kwh"] else "–")
           + " per settled kWh."] if fig.get("warmup_hours") else []),
        *(["- The settlement contract refused positions (retried at the next boundaries): "
           + ", ".join(f"{n} × {why}" for why, n in books.bus["refused_positions"].items())
           + "."] if books.bus.get("refused_positions") else []),
        "", "| gas of the day by kind | transactions | gas | per delivered kWh |",
        "|---|---:|---:|---:|",
        *(f"| {kind} | {g['txs']} | {g['gas']:,} | "
          + ("–" if g["per_kwh"] is None else f"{g['per_kwh']:,}") + " |"
          for kind, g in fig["gas"]["day"].items()),
        "", "Setup apart (the first deposits; deploying, enrolling and funding ran while the "
        "stack came up, before the day's journal): "
        + ", ".join(f"{kind} {g['gas']:,} in {g['txs']}" for kind, g in fig["gas"]["setup"].items())
        + ".", "",
        "| participant | wanted Wh | served Wh | served | available Wh | sold Wh | matchable Wh |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in books.rows:
        lines.append(f"| {row['name']} | {row['wanted_wh']} | {row['served_wh']} | "
                     f"{_pct(row['served_share'])} | {row['available_wh']} | {row['sold_wh']} | "
                     f"{row['matchable_wh']} |")
    return [*lines, ""]


def _findings(books: Reconciliation) -> list[str]:
    """Energy, prices and the meters' differences, a bullet each."""
    t, bus, deals = books.total, books.bus, books.deals
    prices = [d["price"] / MILLI for d in deals]
    reasons = Counter(CLOSE_REASONS.get(d["close_reason"], "open") for d in deals)
    metered = sum(d["meter_wh"] or 0 for d in deals)
    overshoot = sum(max(0.0, (d["meter_wh"] or 0) - d["energy_wh"]) for d in deals)
    return [
        f"- **Energy**: producers' meters counted {t['generated_wh']} Wh into their batteries, "
        f"{t['minted_wh']} Wh were minted, {t['listed_wh']} Wh listed, {t['sold_wh']} Wh sold "
        f"and {t['delivered_wh']} Wh delivered and burned "
        f"({', '.join(f'{n} {r}' for r, n in reasons.most_common())}).",
        f"- **Prices**: {len(deals)} auctions cleared"
        + (f" at a median {statistics.median(prices):.2f} mETH/kWh "
           f"(from {min(prices):.2f} to {max(prices):.2f})" if prices else "")
        + f"; consumers paid {_eth(t['paid_wei'])} ETH, producers received "
        f"{_eth(t['received_wei'])} ETH.",
        f"- **Seller meters vs buyer meters**: batteries gave {bus['seller_out_wh']:.3f} Wh to "
        f"the bus and loads took {bus['buyer_in_wh']:.3f} Wh: "
        f"{bus['seller_out_wh'] - bus['buyer_in_wh']:.3f} Wh ({bus['loss_pct']:.2f} %) lost. "
        f"The emulated bus turned {bus['line_loss_wh']:.3f} Wh into heat (2 % line loss); the "
        f"remaining {bus['residual_wh']:+.4f} Wh is the meters' 3-decimal rounding on the "
        f"serial line (bound ±{bus['rounding_bound_wh']:.4f} Wh). The emulated meters' Wh "
        "counters carry no noise: noise is on the instantaneous V, A and W only.",
        f"- **Buyer meters vs billed**: the buyers' meters counted {metered:.3f} Wh during "
        f"deals and {t['delivered_wh']} Wh were billed; the {metered - t['delivered_wh']:.3f} "
        f"Wh not billed are {overshoot:.3f} Wh past the energy bought (a board stops "
        "exactly at its budget) and the fractions of a Wh below each deal's last whole Wh.",
        "- Per producer, \"seller meter out\" differs from its own deals' deliveries: every "
        "closed battery relay feeds every closed load on the one DC bus, so overlapping deals "
        "share their sellers' batteries. The totals balance as above.",
        "",
    ]


def _participants(books: Reconciliation) -> list[str]:
    """The reconciliation table, a row per participant and the total, in ETH."""
    head = "| participant | " + " | ".join(label.replace("(wei)", "(ETH)")
                                          for _, label in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    body = []
    for row in [*books.rows, books.total]:
        cells = [_eth(row[k]) if k.endswith("_wei") else
                 (f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]))
                 for k, _ in COLUMNS]
        name = f"**{row['name']}**" if row["name"] == "total" else row["name"]
        body.append(f"| {name} | " + " | ".join(cells) + " |")
    return ["## Reconciliation per participant", "", head, rule, *body, "",
            "Wei are in `reconciliation.json`, to the last wei; here in ETH.", ""]


def _plots() -> list[str]:
    lines = ["## Plots", ""]
    for file, caption in PLOTS.items():
        lines += [f"**{caption}**", "", f"![{caption}]({file})", ""]
    return lines


def _disagreeing(books: Reconciliation) -> list[str]:
    """The checks that fail, with their figures (nothing when all hold)."""
    failed = books.failures()
    if not failed:
        return []
    return ["## Checks that disagree", "", "| check | left | right | diff | tolerance |",
            "|---|---:|---:|---:|---:|",
            *(f"| {c.what} | {c.left} | {c.right} | {c.diff} {c.unit} | {c.tolerance} |"
              for c in failed),
            ""]


def _checks(books: Reconciliation) -> list[str]:
    """Every kind of check made, counted."""
    # One line per kind of check: "deal 7: …" and "producer1: …" are counted together.
    kinds = Counter(c.what if c.what.split(": ", 1)[0] in ("tokens", "Ether", "bus")
                    else "each " + c.what.split(": ", 1)[-1] for c in books.checks)
    return ["## Checks", "",
            f"{len(books.checks)} checks, each between two sources that do not copy each "
            "other (meters over serial, chain events, chain state and receipts, the store):",
            "",
            *(f"- {what}" + (f" (× {n})" if n > 1 else "") for what, n in kinds.items())]


def _deals(books: Reconciliation, names: dict[str, str],
           hour_of: Callable[[float], float]) -> list[str]:
    """The table of every deal."""
    lines = ["", "## Deals", "",
             "| deal | seller | buyer | opened | mETH/kWh | bought Wh | delivered Wh | "
             "buyer meter Wh | steps | paid ETH | closed |",
             "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for d in books.deals:
        meter = "" if d["meter_wh"] is None else f"{d['meter_wh']:.3f}"
        opened = _clock(hour_of(d["opened_at"])) if d["opened_at"] else ""
        lines.append(
            f"| {d['id']} | {names.get(d['seller'], d['seller'])} | "
            f"{names.get(d['buyer'], d['buyer'])} | {opened} | {d['price'] / MILLI:.3f} | "
            f"{d['energy_wh']} | {d['delivered_wh']} | {meter} | {d['steps_count']} | "
            f"{_eth(d['paid_wei'])} | {CLOSE_REASONS.get(d['close_reason'], 'open')} |")
    return lines
