"""The simulated day's report: four PNG plots, reconciliation.json and a one-minute summary.md."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 (the backend is chosen first)

from marketplace.agents import demand_w  # noqa: E402
from marketplace.contract_enums import CLOSE_REASONS  # noqa: E402
from marketplace.reconcile import COLUMNS, Reconciliation  # noqa: E402

ETHER = 10**18
MILLI = 10**15  # wei per kWh in one mETH/kWh

PLOTS = {
    "generation.png": "PV generation (W) and battery state of charge per producer",
    "load.png": "power drawn per consumer (meter) against the load it wants",
    "prices.png": "clearing price of every deal over the day",
    "ether.png": "Ether received by producers and paid by consumers, cumulative",
}


def write_report(
    plan: Any,
    books: Reconciliation,
    samples: list[dict[str, Any]],
    names: dict[str, str],
    hour_of: Callable[[float], float],
    wall_s: float,
) -> Path:
    """Write the plots, the JSON and summary.md into plan.out; the summary's path."""
    out = Path(plan.out)
    people = {p["name"]: p for p in plan.participants}
    _generation(out / "generation.png", samples, [n for n, p in people.items()
                                                 if p["role"] == "producer"])
    _load(out / "load.png", samples, {n: p for n, p in people.items() if p["role"] == "consumer"})
    _prices(out / "prices.png", books, names, hour_of, people)
    _ether(out / "ether.png", samples, names)
    (out / "reconciliation.json").write_text(json.dumps({
        "rows": books.rows, "total": books.total, "bus": books.bus,
        "checks": [{**asdict(c), "diff": c.diff, "ok": c.ok} for c in books.checks],
        "deals": [{k: v for k, v in d.items() if k != "steps"} for d in books.deals],
    }, indent=1, default=str))
    summary = out / "summary.md"
    summary.write_text(_summary(plan, books, names, hour_of, samples, wall_s))
    return summary


# -- plots ---------------------------------------------------------------------------------

def _series(samples: list[dict[str, Any]], name: str, key: str) -> tuple[list, list]:
    hours, values = [], []
    for s in samples:
        value = s["boards"].get(name, {}).get(key)
        if value is not None:
            hours.append(s["hour"])
            values.append(value)
    return hours, values


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _generation(path: Path, samples: list[dict[str, Any]], producers: list[str]) -> None:
    fig, axes = plt.subplots(len(producers), 1, figsize=(9, 2.2 * len(producers) + 0.6),
                             sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], producers, strict=True):
        ax.plot(*_series(samples, name, "pv_w"), color="tab:orange", label="PV (W)")
        ax.set_ylabel("W")
        soc = ax.twinx()
        hours, values = _series(samples, name, "soc")
        soc.plot(hours, [100 * v for v in values], color="tab:green", label="battery SoC (%)")
        soc.set_ylim(0, 100)
        soc.set_ylabel("SoC %")
        ax.set_title(name, fontsize=9, loc="left")
        ax.legend(loc="upper left", fontsize=7)
        soc.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("hour of the day")
    fig.suptitle("Generation and battery state of charge")
    _save(fig, path)


def _load(path: Path, samples: list[dict[str, Any]], consumers: dict[str, Any]) -> None:
    fig, axes = plt.subplots(len(consumers), 1, figsize=(9, 1.8 * len(consumers) + 0.6),
                             sharex=True, squeeze=False)
    for ax, (name, spec) in zip(axes[:, 0], consumers.items(), strict=True):
        hours, watts = _series(samples, name, "power_w")
        ax.fill_between(hours, watts, step="post", alpha=0.5, label="drawn (meter)")
        ax.step(hours, [demand_w(spec["profile"], h) for h in hours], where="post",
                color="black", linewidth=0.8, linestyle="--", label="wanted")
        ax.set_ylabel("W")
        ax.set_title(f"{name} (limit {spec['limit_wei'] / MILLI:.2f} mETH/kWh)",
                     fontsize=9, loc="left")
        ax.legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("hour of the day")
    fig.suptitle("Load per consumer")
    _save(fig, path)


def _prices(path: Path, books: Reconciliation, names: dict[str, str],
            hour_of: Callable[[float], float], people: dict[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sellers = sorted({names[d["seller"]] for d in books.deals})
    for seller in sellers:
        mine = [d for d in books.deals if names[d["seller"]] == seller and d["opened_at"]]
        ax.scatter([hour_of(d["opened_at"]) for d in mine], [d["price"] / MILLI for d in mine],
                   s=[8 + d["delivered_wh"] / 3 for d in mine], label=seller, alpha=0.8)
        ax.axhline(people[seller]["reserve_wei"] / MILLI, linestyle=":", linewidth=0.8,
                   color=ax.collections[-1].get_facecolor()[0])
    ax.set_xlabel("hour of the day (deal opened)")
    ax.set_ylabel("mETH per kWh")
    ax.set_title("Clearing prices (dot size: Wh delivered; dotted: the seller's reserve)")
    if sellers:
        ax.legend(fontsize=7)
    _save(fig, path)


def _ether(path: Path, samples: list[dict[str, Any]], names: dict[str, str]) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.8))
    hours = [s["hour"] for s in samples]
    for address, name in names.items():
        key = "received" if any(address in s["received"] for s in samples) else "paid"
        values = [s[key].get(address, 0) / ETHER for s in samples]
        if any(values):
            ax.plot(hours, values, linestyle="-" if key == "received" else "--",
                    label=f"{name} {key}")
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("ETH")
    ax.set_title("Ether flows (solid: received by a producer; dashed: paid by a consumer)")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


# -- summary -------------------------------------------------------------------------------

def _clock(hour: float) -> str:
    minutes = round(hour * 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _eth(wei: int | float) -> str:
    return f"{wei / ETHER:.6f}"


def _summary(plan: Any, books: Reconciliation, names: dict[str, str],
             hour_of: Callable[[float], float], samples: list[dict[str, Any]],
             wall_s: float) -> str:
    t, bus, deals = books.total, books.bus, books.deals
    steps = sum(d["steps_count"] for d in deals)
    rounding = sum(d["rounding_wei"] for d in deals)
    prices = [d["price"] / MILLI for d in deals]
    reasons = Counter(CLOSE_REASONS.get(d["close_reason"], "open") for d in deals)
    metered = sum(d["meter_wh"] or 0 for d in deals)
    overshoot = sum(max(0.0, (d["meter_wh"] or 0) - d["energy_wh"]) for d in deals)
    first, last = (samples[0]["hour"], samples[-1]["hour"]) if samples else (0.0, 0.0)
    failed = books.failures()
    verdict = (f"**Reconciliation holds**: all {len(books.checks)} checks agree"
               if not failed else
               f"**Reconciliation FAILS**: {len(failed)} of {len(books.checks)} checks disagree")
    lines = [
        f"# A day on the microgrid: {plan.producers} producers, {plan.consumers} consumers, "
        f"{plan.hours:g} h",
        "",
        f"Simulated on {datetime.now():%Y-%m-%d %H:%M} through the real stack (chain "
        f"`{plan.chain}`, contracts, boards on ptys behind the serial bridge, the market) at "
        f"×{plan.speed:g} emulated time; trading ran {last - first:.1f} h from "
        f"{_clock(first)}, the whole run took {wall_s:.0f} s.",
        "",
        f"{verdict} — energy and tokens to 0 Wh, balances to 0 wei, payments within 1 wei "
        f"per delivery step (the escrow's rounding down came to {rounding:.3f} wei over "
        f"{steps} steps in {len(deals)} deals).",
        "",
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
        f"Wh not billed are {overshoot:.3f} Wh past the energy bought (a board opens its relay "
        "at the end of the physics step that spends its budget) and the fractions of a Wh "
        "below each deal's last whole Wh.",
        "- Per producer, \"seller meter out\" differs from its own deals' deliveries: every "
        "closed battery relay feeds every closed load on the one DC bus, so overlapping deals "
        "share their sellers' batteries. The totals balance as above.",
        "",
        "## Reconciliation per participant",
        "",
        _table(books),
        "",
        "Wei are in `reconciliation.json`, to the last wei; here in ETH.",
        "",
        "## Plots",
        "",
    ]
    for file, caption in PLOTS.items():
        lines += [f"**{caption}**", "", f"![{caption}]({file})", ""]
    if failed:
        lines += ["## Checks that disagree", "", "| check | left | right | diff | tolerance |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {c.what} | {c.left} | {c.right} | {c.diff} {c.unit} | {c.tolerance} |"
                  for c in failed]
        lines.append("")
    # One line per kind of check: "deal 7: …" and "producer1: …" are counted together.
    kinds = Counter(c.what if c.what.split(": ", 1)[0] in ("tokens", "Ether", "bus")
                    else "each " + c.what.split(": ", 1)[-1] for c in books.checks)
    lines += ["## Checks", "",
              f"{len(books.checks)} checks, each between two sources that do not copy each "
              "other (meters over serial, chain events, chain state and receipts, the store):",
              ""]
    lines += [f"- {what}" + (f" (× {n})" if n > 1 else "") for what, n in kinds.items()]
    lines += ["", "## Deals", "",
              "| deal | seller | buyer | opened | mETH/kWh | bought Wh | delivered Wh | "
              "buyer meter Wh | steps | paid ETH | closed |",
              "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for d in deals:
        meter = "" if d["meter_wh"] is None else f"{d['meter_wh']:.3f}"
        opened = _clock(hour_of(d["opened_at"])) if d["opened_at"] else ""
        lines.append(
            f"| {d['id']} | {names.get(d['seller'], d['seller'])} | "
            f"{names.get(d['buyer'], d['buyer'])} | {opened} | {d['price'] / MILLI:.3f} | "
            f"{d['energy_wh']} | {d['delivered_wh']} | {meter} | {d['steps_count']} | "
            f"{_eth(d['paid_wei'])} | {CLOSE_REASONS.get(d['close_reason'], 'open')} |")
    return "\n".join(lines) + "\n"


def _table(books: Reconciliation) -> str:
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
    return "\n".join([head, rule, *body])
