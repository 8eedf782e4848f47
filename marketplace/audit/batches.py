"""Checks of the interval market's settlements on chain against the published intervals: each
PositionSettled carries what the participant's re-derived fills add up to over its intervals,
no filled interval is skipped between two settlements, and no order is used after its owner
cancelled it on chain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from contracts.bindings import order_hash
from marketplace.audit.events import Event, in_order
from marketplace.audit.findings import Finding, short
from marketplace.audit.intervals import Domains, Settled
from marketplace.audit.published import PublishedInterval

SIDES = {1: "buy", 2: "sell"}  # IntervalSettlement.BUY, .SELL
MAX_SPAN = 96 * 366  # intervals one position may cover: a year of 15 minutes


def positions(events: Iterable[Event]) -> list[Event]:
    """The PositionSettled events, in chain order."""
    return [e for e in in_order(events) if e.name == "PositionSettled"]


def check_positions(events: Iterable[Event], owed: Mapping[int, Settled]) -> list[Finding]:
    """Each settled position is its account's re-derived fills over its intervals (Wh and wei),
    its meter counter the end reading's, and every filled interval is settled in order."""
    found: list[Finding] = []
    last: dict[tuple[str, str], int] = {}
    for event in positions(events):
        a = event.args
        side = SIDES.get(a["side"], "?")
        key, first, through = (a["account"], side), a["fromInterval"], a["toInterval"]
        where = f"{side} position of {short(a['account'])} for intervals {first}..{through}"
        if not 0 <= through - first < MAX_SPAN:
            found.append(Finding("batch", where, "is not a range of intervals to re-derive"))
            continue
        missing = [n for n in range(first, through + 1) if n not in owed]
        if missing:
            found.append(Finding("batch", where, f"interval {missing[0]} is not published: "
                                 "the position cannot be re-derived"))
            last[key] = through
            continue
        wh = sum(owed[n].owed.get(key, (0, 0))[0] for n in range(first, through + 1))
        wei = sum(owed[n].owed.get(key, (0, 0))[1] for n in range(first, through + 1))
        if (a["wh"], a["amountWei"]) != (wh, wei):
            found.append(Finding("batch", where, f"settled {a['wh']} Wh for {a['amountWei']} wei; "
                                 f"its published fills make {wh} Wh for {wei} wei"))
        counter = owed[through].closing.get(key)
        if counter is not None and a["meterWh"] != counter:
            found.append(Finding("batch", where, f"settled its meter to {a['meterWh']} Wh; its "
                                 f"signed reading at interval {through}'s end says {counter}"))
        skipped = [n for n in sorted(owed) if last.get(key, -1) < n < first
                   and any(owed[n].owed.get(key, (0, 0)))]
        if skipped:
            found.append(Finding("batch", where, f"interval {skipped[0]}'s fill was never "
                                 "settled (the position starts after it)"))
        last[key] = through
    return found


def check_cancelled(
    intervals: Iterable[PublishedInterval], events: Iterable[Event], domains: Domains
) -> list[Finding]:
    """No interval starting after an OrderCancelled uses the cancelled order."""
    cancelled = {e.args["order"]: e for e in events if e.name == "OrderCancelled"}
    found = []
    for interval in intervals:
        for published in interval.orders:
            event = cancelled.get(order_hash(published.kind, published.order, domains.order()))
            if event is not None and interval.start > event.at:
                found.append(Finding("order", f"interval {interval.n} {published.kind} order of "
                                     f"{short(published.owner)}", f"used after its owner "
                                     f"cancelled it at {event.at} (block {event.block})"))
    return found


def settled_counts(events: Iterable[Event]) -> dict[str, int]:
    """How many positions and batches settled on chain."""
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        if event.name == "PositionSettled":
            counts["positions"] += 1
        elif event.name == "BatchSettled":
            counts["batches"] += 1
    return dict(counts)
