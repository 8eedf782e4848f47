"""What the market is for, measured: Wh wanted and served, available and sold, and matchable.

Pure functions of the day's physics (the stepper's notes at every interval boundary: what each
load's profile asked for, what each battery held and took in), the participants' limits and
what the books say was sold. Matchable Wh, per interval: the welfare-maximal clearing of the
true wanted Wh (at each consumer's cap) against the true Wh available above reserve (at each
producer's floor; only metered generation is sellable, as tokens are minted from the meter,
and what the optimum sold in one interval is not sellable again), line loss included
(marketplace.clearing.matchable_wh); summed over the day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from firmware_bridge.emulator.microgrid import LINE_LOSS
from marketplace.clearing import Bid, Offer, matchable_wh

FIELDS = ("wanted_wh", "served_wh", "available_wh", "sold_wh", "matchable_wh")


def interval_book(
    people: Sequence[Mapping[str, Any]], before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]], seconds: float, unsold: Mapping[str, float],
) -> tuple[list[Bid], list[Offer]]:
    """One interval's true book: each load's wanted Wh at its cap, each producer's sellable Wh
    at its floor.

    Sellable (Wh sent): its battery above reserve (held at the start plus stored during),
    within its power over the interval and within its metered generation not sold yet
    (`unsold` at the interval's start, by address, plus what it stores during it) with the
    line loss on top, as the market's tokens cap what a seller is paid for: tokens are minted
    from the meter, so a battery's charge from before the day is no energy it can sell.
    """
    bids, offers = [], []
    for p in people:
        now, then = after[p["board"]], before[p["board"]]
        if p["role"] == "consumer":
            bids.append(Bid(p["address"], _whole(now["wanted_wh"] - then["wanted_wh"]),
                            p["limit_wei"]))
            continue
        above = max(0.0, then["stored_wh"] - p["reserve_wh"])
        stored = now["wh_in"] - then["wh_in"]  # PV into the battery, as its meter counted
        power = now["max_discharge_w"] * seconds / 3600.0
        # Tokens cap the Wh sold (received); the bus's loss on top comes from the battery.
        tokens = (unsold[p["address"]] + stored) / (1 - LINE_LOSS)
        offers.append(Offer(p["address"], _whole(min(above + stored, power, tokens)),
                            p["reserve_wei"]))
    return bids, offers


def matchable(people: Sequence[Mapping[str, Any]],
              boundaries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Per participant, Σ over the day's intervals of the Wh a welfare-maximal clearing of
    the true book trades (received Wh for a consumer, sent Wh for a producer); and the day's
    welfare at the participants' limits: that optimum's, and the metered one's."""
    total = {p["address"]: 0 for p in people}
    value = {p["address"]: p["limit_wei"] if p["role"] == "consumer" else -p["reserve_wei"]
             for p in people}
    welfare = {"optimum_wei": 0, "metered_wei": 0}
    # Each producer's generation the optimum has not sold yet: what it sells in one interval
    # it cannot sell again in the next (the day's real sales do not count here).
    unsold = {p["address"]: 0.0 for p in people if p["role"] == "producer"}
    for before, after in zip(boundaries, boundaries[1:], strict=False):
        bids, offers = interval_book(people, before["physics"], after["physics"],
                                     after["t"] - before["t"], unsold)
        matched = matchable_wh(bids, offers, LINE_LOSS)
        for p in people:
            if p["role"] == "producer":
                board = p["board"]
                stored = after["physics"][board]["wh_in"] - before["physics"][board]["wh_in"]
                sold = matched.get(p["address"], 0) * (1 - LINE_LOSS)
                unsold[p["address"]] += stored - sold
        for address, wh in matched.items():
            total[address] += wh
            welfare["optimum_wei"] += value[address] * wh // 1000
        for p in people:  # what the meters say moved: a load's Wh in, a battery's Wh out
            key = "wh_in" if p["role"] == "consumer" else "wh_out"
            moved = after["physics"][p["board"]][key] - before["physics"][p["board"]][key]
            welfare["metered_wei"] += int(value[p["address"]] * moved) // 1000
    return total, welfare


def measure(
    people: Sequence[Mapping[str, Any]], boundaries: Sequence[Mapping[str, Any]],
    sold: Mapping[str, int],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per participant (by address) and in total: wanted, served, available, sold, matchable.

    sold: Wh each producer was paid for (from the books of the market mode that ran).
    """
    first, last = boundaries[0]["physics"], boundaries[-1]["physics"]
    fits, welfare = matchable(people, boundaries)
    rows: dict[str, dict[str, Any]] = {}
    for p in people:
        a, b = first[p["board"]], last[p["board"]]
        consumer = p["role"] == "consumer"
        rows[p["address"]] = {
            "wanted_wh": round(b["wanted_wh"] - a["wanted_wh"], 3) if consumer else 0,
            "served_wh": round(b["wh_in"] - a["wh_in"], 3) if consumer else 0,
            # What it could sell over the day: every Wh its meter counted into the battery
            # (minted, sellable), less what a battery starting under its reserve kept back
            # (curtailed PV never was available).
            "available_wh": 0 if consumer else round(min(
                max(0.0, a["stored_wh"] - p["reserve_wh"]) + b["wh_in"] - a["wh_in"],
                b["wh_in"] - a["wh_in"]), 3),
            "sold_wh": 0 if consumer else sold.get(p["address"], 0),
            "matchable_wh": fits[p["address"]],
        }
        rows[p["address"]]["served_share"] = _share(rows[p["address"]]["served_wh"],
                                                    rows[p["address"]]["wanted_wh"])
    total = totals(people, rows)
    total["welfare_wei"], total["optimum_welfare_wei"] = (welfare["metered_wei"],
                                                          welfare["optimum_wei"])
    total["welfare_of_optimum"] = _share(welfare["metered_wei"], welfare["optimum_wei"])
    return rows, total


def totals(people: Sequence[Mapping[str, Any]],
           rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The community's sums and shares (matchable split into received and sent Wh)."""
    def of(role: str, key: str) -> float:
        return sum(rows[p["address"]][key] for p in people if p["role"] == role)

    wanted, served = of("consumer", "wanted_wh"), of("consumer", "served_wh")
    available, sold = of("producer", "available_wh"), of("producer", "sold_wh")
    matchable_in, matchable_out = of("consumer", "matchable_wh"), of("producer", "matchable_wh")
    return {
        "wanted_wh": round(wanted, 3), "served_wh": round(served, 3),
        "available_wh": round(available, 3), "sold_wh": sold,
        "matchable_wh": matchable_in, "matchable_sent_wh": matchable_out,
        "served_share": _share(served, wanted),
        # The loads' need met from the community's own batteries: with no grid behind the
        # bus, the unmet rest is what a grid connection would have had to supply.
        "self_sufficiency": _share(served, wanted),
        "served_of_matchable": _share(served, matchable_in),
        "sold_of_available": _share(sold, available),
        "unserved_consumers": sum(1 for p in people if p["role"] == "consumer"
                                  and rows[p["address"]]["served_wh"] < 1),
    }


def _whole(wh: float) -> int:
    return max(0, math.floor(wh + 1e-9))


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
