"""The simulated day's four PNG plots: generation, load, prices and Ether flows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 (the backend is chosen first)

from simulation.agents import demand_w  # noqa: E402
from simulation.plan import ETHER  # noqa: E402
from simulation.plan import MILLI_ETH_PER_KWH as MILLI  # noqa: E402
from simulation.reconcile import Reconciliation  # noqa: E402

PLOTS = {
    "generation.png": "PV generation (W) and battery state of charge per producer",
    "load.png": "power drawn per consumer (meter) against the load it wants",
    "prices.png": "clearing price of every deal (lots) or interval (intervals) over the day",
    "ether.png": "Ether received by producers and paid by consumers, cumulative",
}


def draw_plots(
    out: Path, participants: list[dict[str, Any]], books: Reconciliation,
    samples: list[dict[str, Any]], names: dict[str, str], hour_of: Callable[[float], float],
) -> None:
    """Draw the four plots of PLOTS into the directory out."""
    people = {p["name"]: p for p in participants}
    _generation(out / "generation.png", samples, [n for n, p in people.items()
                                                 if p["role"] == "producer"])
    _load(out / "load.png", samples, {n: p for n, p in people.items() if p["role"] == "consumer"})
    _prices(out / "prices.png", books, names, hour_of, people)
    _ether(out / "ether.png", samples, names)


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
    cleared = (books.figures or {}).get("interval_prices") or []
    if cleared:
        _interval_prices(ax, cleared, hour_of, people)
        _save(fig, path)
        return
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


def _interval_prices(ax: Any, cleared: list[dict[str, Any]],
                     hour_of: Callable[[float], float], people: dict[str, Any]) -> None:
    """Each cleared interval's price as a step line, dots sized by the Wh it traded; the
    producers' floors dotted, the consumers' caps dashed."""
    hours = [hour_of(c["start"]) for c in cleared]
    prices = [c["price_wei"] / MILLI for c in cleared]
    step = min((b - a for a, b in zip(hours, hours[1:], strict=False) if b > a), default=0.25)
    line_h, line_p = [], []
    for i, (hour, price) in enumerate(zip(hours, prices, strict=True)):
        if i and hour - hours[i - 1] > 1.5 * step:  # intervals that cleared nothing: a gap
            line_h.append(hours[i - 1] + step)
            line_p.append(float("nan"))
        line_h.append(hour)
        line_p.append(price)
    ax.step(line_h, line_p, where="post", color="tab:blue", linewidth=0.9)
    ax.scatter(hours, prices, s=[4 + c["volume_wh"] / 20 for c in cleared], color="tab:blue",
               alpha=0.6, label="interval clearing price")
    for spec in people.values():
        limit = spec.get("reserve_wei") if spec["role"] == "producer" else spec.get("limit_wei")
        if limit:
            ax.axhline(limit / MILLI, linewidth=0.6, alpha=0.5,
                       color="tab:green" if spec["role"] == "producer" else "tab:red",
                       linestyle=":" if spec["role"] == "producer" else "--")
    ax.set_xlabel("hour of the day (interval start; a warm-up before it is negative)")
    ax.set_ylabel("mETH per kWh")
    ax.set_title("Interval clearing prices (dot size: Wh bought and sold; dotted green: "
                 "producers' floors; dashed red: consumers' caps)", fontsize=9)
    ax.legend(fontsize=7)


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
