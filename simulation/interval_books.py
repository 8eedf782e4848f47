"""The interval market's books of a day, checked interval by interval and against the chain.

Sources that do not copy each other: the published intervals (fills, and the boundary
readings each meter key signed), the chain (PositionSettled events, escrow and token state,
receipts), the meters over serial and the emulator's own line-loss count at every boundary.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from firmware_bridge.signing import SignedReading
from marketplace import interval_accounts
from marketplace.clearing import Fill
from marketplace.contract_enums import EscrowMarket
from simulation.day import TradingDay
from simulation.reconcile import Check, Reconciliation


def read_interval_books(day: TradingDay) -> Reconciliation:
    """Every interval of the day and the chain's settlement, checked; rows per participant."""
    rt, journal = day.runtime, day.journal
    journal.poll()
    intervals = rt.market.intervals
    first = intervals.boundaries.index(day.t0)
    last = intervals.boundaries.index(rt.clock.now())
    views = [v for n in range(first, last + 1) if (v := intervals.interval_view(n))]
    meter_of = {p["address"]: p["meter_address"] for p in rt.store.participants()}
    domain = rt.ledger.reading_domain()
    checks: list[Check] = []
    fills: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    losses = _losses(day, first)
    for view in views:
        _interval(view, meter_of, domain, losses.get(view["n"]), checks, fills,
                  rt.market.settings.max_line_loss_bps())
    events = rt.ledger.intervals.events(0)  # the settlement contract's own logs
    settled = [e["args"] for e in events if e["event"] == "PositionSettled"]
    refused = [e["args"] for e in events if e["event"] == "PositionRefused"]
    rows = [_row(day, p, fills, settled, checks) for p in day.people]
    unsettled = intervals.istore.unsettled()
    checks.append(Check("intervals: fills left unsettled at the day's end", len(unsettled), 0,
                        "fills"))
    total = {k: sum(r[k] for r in rows) for k in rows[0] if k not in ("name", "role")}
    total.update(name="total", role="")
    total["delivered_wh"] = sum(r["billed_wh"] for r in rows if r["role"] == "consumer")
    books = Reconciliation(rows, total, checks, _bus(day, checks), [])
    # Refusals are no disagreement of the books (a refused position is retried), but cost gas.
    reasons: dict[str, int] = defaultdict(int)
    for r in refused:
        reasons[r["reason_name"]] += 1
    books.bus["refused_positions"] = dict(reasons)
    return books


def _losses(day: TradingDay, first_n: int) -> dict[int, float]:
    """The emulated bus's line loss in each interval, from the stepper's boundary notes."""
    notes = day.stepper.boundaries
    return {first_n + k: b["line_loss_wh"] - a["line_loss_wh"]
            for k, (a, b) in enumerate(zip(notes, notes[1:], strict=False))}


def _interval(view: dict[str, Any], meter_of: dict[str, str], domain: Any,
              loss_wh: float | None, checks: list[Check],
              sums: dict[tuple[str, str], dict[str, int]], max_loss_bps: int = 0) -> None:
    """One interval: signed readings, metered Wh, re-derived accounts, payouts, line loss."""
    fills = view["fills"]
    if not fills:
        return
    label = f"interval {view['n']}"
    readings = {side: {} for side in ("start", "end")}
    for side in readings:
        for data in view["readings"][side]:
            reading = SignedReading.from_json(data)
            readings[side][reading.meter] = reading
            checks.append(Check(f"{label}: {side} reading of {reading.meter} signed by its "
                                "meter key", int(reading.signed_by_meter(domain)), 1, ""))
    metered: dict[str, dict[str, int]] = {"buy": {}, "sell": {}}
    for f in fills:
        meter, side = meter_of[f["address"]], f["side"]
        start, end = readings["start"].get(meter), readings["end"].get(meter)
        wh = 0
        if start is not None and end is not None:
            wh = (end.wh_in - start.wh_in) if side == "buy" else (end.wh_out - start.wh_out)
        metered[side][f["address"]] = wh
        checks.append(Check(f"{label}: {side} fill of {f['address']}: metered, published vs "
                            "its boundary readings", int(f["metered_wh"] or 0), wh, "Wh"))
    rule = view["pricing"]
    book = [Fill(**fl) for fl in _pairs(view)]
    # As the market accounts: a seller's burn capped by its floor and the line-loss bound.
    acct = interval_accounts.account(book, metered["buy"], metered["sell"], rule,
                                     floors={o["seller"]: int(o["floor"]) for o in view["offers"]},
                                     max_loss_bps=max_loss_bps)
    for f in fills:
        a, side = f["address"], f["side"]
        billed = (acct.billed_wh if side == "buy" else acct.burned_wh).get(a, 0)
        paid = (acct.paid_wei if side == "buy" else acct.payout_wei).get(a, 0)
        checks.append(Check(f"{label}: {side} fill of {a}: billed, published vs re-derived",
                            int(f["billed_wh"] or 0), billed, "Wh"))
        checks.append(Check(f"{label}: {side} fill of {a}: paid, published vs re-derived",
                            int(f["paid_wei"] or 0), paid, "wei"))
        row = sums[(a, side)]
        row["wh"] += int(f["wh"])
        row["metered_wh"] += metered[side][a]
        row["billed_wh"] += int(f["billed_wh"] or 0)
        row["paid_wei"] += int(f["paid_wei"] or 0)
    paid_in, paid_out = sum(acct.paid_wei.values()), sum(acct.payout_wei.values())
    checks.append(Check(f"{label}: Σ payouts + dust vs Σ buyers' payments", paid_out +
                        acct.dust_wei, paid_in, "wei"))
    if loss_wh is not None:
        out, into = sum(metered["sell"].values()), sum(metered["buy"].values())
        # Signed readings are whole Wh: each meter's count over the interval is off by < 1.
        checks.append(Check(f"{label}: sellers' meters out − buyers' meters in vs the bus's "
                            "line loss", out - into, round(loss_wh, 3), "Wh",
                            tolerance=len(fills)))


def _pairs(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The interval's pairwise fills, re-derived from its published offers and bids."""
    from marketplace.clearing import Bid, Offer, clear

    result = clear([Offer(o["seller"], int(o["wh"]), int(o["floor"])) for o in view["offers"]],
                   [Bid(b["buyer"], int(b["wh"]), int(b["cap"])) for b in view["bids"]],
                   view["pricing"])
    return [{"seller": f.seller, "buyer": f.buyer, "wh": f.wh, "price": f.price}
            for f in result.fills]


def _row(day: TradingDay, who: dict[str, Any], sums: dict[tuple[str, str], dict[str, int]],
         events: list[dict[str, Any]], checks: list[Check]) -> dict[str, Any]:
    """A participant's fills and their settlement on chain, checked against each other."""
    address, name = who["address"], who["name"]
    side = "buy" if who["role"] == "consumer" else "sell"
    mine = sums.get((address, side), {})
    settled = [e for e in events if e["account"] == address and e["side_name"] == side]
    chain_wh, chain_wei = sum(e["wh"] for e in settled), sum(e["amountWei"] for e in settled)
    row = {"name": name, "role": who["role"], "bought_or_sold_wh": mine.get("wh", 0),
           "metered_wh": mine.get("metered_wh", 0), "billed_wh": mine.get("billed_wh", 0),
           "paid_wei": mine.get("paid_wei", 0) if side == "buy" else 0,
           "received_wei": mine.get("paid_wei", 0) if side == "sell" else 0,
           "settled_wh": chain_wh, "settled_wei": chain_wei,
           "gas_wei": day.journal.fees.get(address, 0)}
    checks.append(Check(f"{name}: Wh billed in its fills vs settled (PositionSettled events)",
                        row["billed_wh"], chain_wh, "Wh"))
    checks.append(Check(f"{name}: wei of its fills vs settled (PositionSettled events)",
                        mine.get("paid_wei", 0), chain_wei, "wei"))
    ledger = day.runtime.ledger
    if side == "buy":
        free = ledger.escrow_free(address, EscrowMarket.COMMUNITY)
        deposits = sum(e["amount"] for e in day.journal.of("Deposited") if e["buyer"] == address)
        checks.append(Check(f"{name}: community escrow (state) vs deposits − settled payments "
                            "(events)", free, deposits - chain_wei, "wei"))
    else:
        checks.append(Check(f"{name}: owed in the escrow (state) vs settled payouts (events)",
                            ledger.owed_to(address), chain_wei, "wei"))
    return row


def _bus(day: TradingDay, checks: list[Check]) -> dict[str, float]:
    """The whole day's seller meters against buyer meters, read over serial at the end."""
    rt = day.runtime
    out = sum(rt.bridge.read(p["board"]).wh_out for p in day.people if p["role"] == "producer")
    into = sum(rt.bridge.read(p["board"]).wh_in for p in day.people if p["role"] == "consumer")
    loss = rt.microgrid.line_loss_wh
    rounding = 0.0005 * len(day.people) + 1e-6
    checks.append(Check("bus: seller meters out − buyer meters in vs the bus's line loss",
                        out - into, loss, "Wh", tolerance=rounding))
    return {"seller_out_wh": out, "buyer_in_wh": into, "line_loss_wh": loss,
            "loss_pct": 100 * (out - into) / out if out else 0.0,
            "residual_wh": out - into - loss, "rounding_bound_wh": rounding}
