"""The interval market shaped for the pages, the API and the audit (wei as decimal strings)."""

from __future__ import annotations

from typing import Any

from marketplace.intervals.boundaries import DAY_S, Boundaries
from marketplace.intervals.orders import BUY
from marketplace.intervals.store import IntervalStore
from marketplace.switchboard import Switchboard


def interval_view(istore: IntervalStore, boundaries: Boundaries, n: int) -> dict[str, Any] | None:
    """Interval n as published: its book, orders, fills and boundary readings (None: unknown)."""
    row = istore.interval(n)
    if row is None or row["status"] == "claimed":  # not cleared yet: nothing to publish
        return None
    fills = istore.fills(n)
    # Readings of the meters filled in n, and in the interval before (whose spill into n's
    # window is counted to their fills there: marketplace.intervals.accounting).
    before = [f for m in (istore.prev_n(n),) if m is not None for f in istore.fills(m)]
    meters = {istore.order(f["order_id"])["order"]["meter"] for f in fills + before}
    readings = istore.readings(n)
    return {
        "n": n, "start": boundaries.start(n), "end": boundaries.end(n),
        "emulated_start": boundaries.emulated(n), "pricing": row["pricing"],
        "status": row["status"], "price_wei": _wei(row["price_wei"]),
        "offers": [{"seller": o["seller"], "wh": o["wh"], "floor": str(o["floor"])}
                   for o in row["offers"]],
        "bids": [{"buyer": b["buyer"], "wh": b["wh"], "cap": str(b["cap"])} for b in row["bids"]],
        "orders": row["orders"],
        "fills": [_fill(f) for f in fills],
        "readings": {side: [r for m, r in sorted(readings[side].items()) if m in meters]
                     for side in ("start", "end")},
    }


def history(istore: IntervalStore, boundaries: Boundaries, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` intervals, oldest first: bounds (market clock and emulated), price,
    Wh traded."""
    rows = []
    for row in reversed(istore.intervals(limit)):
        n = row["n"]
        rows.append({"n": n, "start": boundaries.start(n), "end": boundaries.end(n),
                     "emulated_start": boundaries.emulated(n),
                     "emulated_end": boundaries.emulated(n + 1),
                     "price_wei": _wei(row["price_wei"]),
                     "volume_wh": sum(f["wh"] for f in row["fills"])})
    return rows


def fills_of(istore: IntervalStore, owner: str, limit: int) -> list[dict[str, Any]]:
    """An account's fills, newest first: what it bought or sold, metered, paid or received."""
    return [{**_fill(f), "n": f["n"], "settled": f["settled_batch"] is not None,
             "batch": f["settled_batch"]} for f in istore.fills_of(owner, limit)]


def current_of(istore: IntervalStore, boundaries: Boundaries, switchboard: Switchboard,
               owner: str, n: int, settle_wh: int) -> dict[str, Any]:
    """This interval's fill of an account with what it earned or cost so far, and when its
    unsettled fills settle (at settle_wh unsettled, else at the day's end)."""
    current = None
    for fill in istore.fills_of(owner, 2):
        if fill["n"] == n:
            current = fill
    unsettled = istore.unsettled(owner)
    day_end = -(-(boundaries.day(n) + 1) * DAY_S // boundaries.interval_s)  # first n of next day
    view: dict[str, Any] = {
        "n": n, "start": boundaries.start(n), "end": boundaries.end(n), "fill": None,
        "unsettled_wh": sum(int(f["billed_wh"]) for f in unsettled),
        "unsettled_wei": str(sum(int(f["paid_wei"] or 0) for f in unsettled)),
        "settles_at_wh": settle_wh, "day_ends_at": boundaries.start(day_end),
    }
    if current is not None:
        so_far = _metered_so_far(istore, switchboard, owner, current)
        wh = min(so_far, current["wh"])
        view["fill"] = {**_fill(current), "metered_so_far_wh": so_far,
                        "amount_so_far_wei": str(int(current["price_wei"]) * wh // 1000)}
    return view


def _metered_so_far(istore: IntervalStore, switchboard: Switchboard, owner: str,
                    fill: dict[str, Any]) -> int:
    """Whole Wh the fill's meter counted since its interval began (signed readings)."""
    meter = istore.order(fill["order_id"])["order"]["meter"]
    start = istore.readings(fill["n"])["start"].get(meter)
    who = istore.db.participant(owner)
    now = switchboard.signed(who["board_id"]) if who and who["board_id"] else None
    if start is None or now is None:
        return 0
    field = ("whIn", "wh_in") if fill["side"] == BUY else ("whOut", "wh_out")
    return max(int(getattr(now, field[1])) - int(start[field[0]]), 0)


def _fill(f: dict[str, Any]) -> dict[str, Any]:
    return {"address": f["address"], "side": f["side"], "wh": f["wh"],
            "price_wei": str(f["price_wei"]), "metered_wh": f["metered_wh"],
            "spill_wh": f.get("spill_wh"),
            "billed_wh": f["billed_wh"], "paid_wei": _wei(f["paid_wei"])}


def _wei(value: Any) -> str | None:
    return None if value is None else str(value)
