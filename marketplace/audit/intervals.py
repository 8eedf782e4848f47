"""Checks of the community market's published intervals: each clearing re-derived from its
offers and bids, each offer and bid within its owner's signed standing order, each boundary
reading signed by its meter, and each fill's metered Wh and payment re-derived from them.

Pure: published intervals in, findings and what each participant should settle out (the
batch check in batches.py compares that with the chain's PositionSettled events).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from contracts.bindings import order_typed_data, recover_typed
from firmware_bridge.signing import ReadingDomain, SignedReading
from marketplace.audit.findings import Finding, short
from marketplace.audit.published import PublishedInterval
from marketplace.clearing import Bid, Clearing, Offer, clear
from marketplace.errors import InvalidInput
from marketplace.interval_accounts import account
from marketplace.ledger_intervals import MAX_LINE_LOSS_BPS
from marketplace.standing import interval_bid

UNLIMITED = 2**256  # a free balance that never limits a bid


@dataclass(frozen=True)
class Domains:
    """Where orders and readings are signed: the chain, the settlement contract, the token."""

    chain_id: int
    settlement: str
    token: str
    max_loss_bps: int = MAX_LINE_LOSS_BPS  # the settlement's maxLineLossBps (sellers' burn cap)

    def order(self) -> dict[str, object]:
        """The settlement's EIP-712 domain fields the order types need."""
        return {"chainId": self.chain_id, "verifyingContract": self.settlement}

    def reading(self) -> ReadingDomain:
        """The token's domain meter readings are signed in."""
        return ReadingDomain(self.chain_id, self.token)


@dataclass(frozen=True)
class Settled:
    """What one interval owes each participant on chain: (address, side) -> (Wh, wei);
    a buyer's billed Wh and payment, a seller's burned Wh and payout. `derived` is False where
    the readings did not let the audit re-derive them (the published figures stand in)."""

    n: int
    owed: dict[tuple[str, str], tuple[int, int]]
    derived: bool
    closing: dict[tuple[str, str], int] = field(default_factory=dict)  # end readings' counters


def check_intervals(
    intervals: Iterable[PublishedInterval], domains: Domains
) -> tuple[list[Finding], dict[int, Settled]]:
    """Every published interval checked; what each one owes, by interval number."""
    found: list[Finding] = []
    owed: dict[int, Settled] = {}
    spent: dict[tuple[str, int | None], int] = {}  # a buyer's payments on a day
    previous = None
    for interval in sorted(intervals, key=lambda i: i.n):
        found += check_orders(interval, domains)
        if previous is not None and previous.n == interval.n - 1:
            found += check_bids(interval, previous, spent)
        previous = interval
        clearing, problems = check_clearing(interval)
        found += problems
        if interval.status == "open":  # not accounted yet: nothing metered or paid to check
            continue
        metered, problems = check_readings(interval, clearing, domains.reading())
        found += problems
        settled, problems = check_accounts(interval, clearing, metered, domains.max_loss_bps)
        found += problems + check_budgets(interval, settled, spent)
        owed[interval.n] = replace(settled, closing=closing_counters(interval, domains.reading()))
    return found, owed


def check_budgets(interval: PublishedInterval, settled: Settled,
                  spent: dict[tuple[str, int | None], int]) -> list[Finding]:
    """No buyer pays more in a day than its order's daily budget (adds to `spent`)."""
    found = []
    for (address, side), (_, wei) in sorted(settled.owed.items()):
        published = interval.order_of(side, address)
        if side != "buy" or interval.day is None:
            continue
        before = spent.get((address, interval.day), 0)
        spent[address, interval.day] = before + wei
        budget = published.order["dailyBudgetWei"] if published else 0
        if budget and before + wei > budget >= before:
            found.append(_finding(interval, f"buyer {short(address)}", f"pays {before + wei} "
                                  f"wei on day {interval.day}, over its daily budget of {budget}",
                                  "order"))
    return found


def _finding(interval: PublishedInterval, about: str, message: str, kind: str = "interval") -> \
        Finding:
    subject = f"interval {interval.n}" + (f" {about}" if about else "")
    return Finding(kind, subject, message)


def check_orders(interval: PublishedInterval, domains: Domains) -> list[Finding]:
    """Each offer and bid comes from its owner's signed standing order, within its limits."""
    found = []
    entries = [("sell", seller, wh, floor) for seller, wh, floor in interval.offers] + [
        ("buy", buyer, wh, cap) for buyer, wh, cap in interval.bids]
    for kind, owner, wh, limit in entries:
        about = f"{'offer' if kind == 'sell' else 'bid'} of {short(owner)}"
        published = interval.order_of(kind, owner)
        if published is None:
            found.append(_finding(interval, about, f"no signed {kind} order of its owner is "
                                                   "published", "order"))
            continue
        order = published.order
        signer = recover_typed(order_typed_data(kind, order, domains.order()),
                               published.signature)
        problems = [] if signer == owner else ["its order is not signed by its owner "
                                               "(altered or forged)"]
        name = "floorWeiPerKWh" if kind == "sell" else "capWeiPerKWh"
        if limit != order[name]:
            word = "floor" if kind == "sell" else "cap"
            problems.append(f"{word} {limit} wei/kWh, the signed order's is {order[name]}")
        if order["maxWhPerInterval"] and wh > order["maxWhPerInterval"]:
            problems.append(f"{wh} Wh is above the order's {order['maxWhPerInterval']} Wh "
                            "per interval")
        if order["expiry"] < interval.start:
            problems.append(f"the order expired at {order['expiry']}, before the interval")
        found += [_finding(interval, about, p, "order") for p in problems]
    return found


def check_bids(interval: PublishedInterval, previous: PublishedInterval,
               spent: dict[tuple[str, int | None], int]) -> list[Finding]:
    """Each bid at most what standing.interval_bid gives its order after the interval before:
    its expected draw (the last metered draw if served, else expectedWh) within its caps and
    what its daily budget has left. The free balance is not published: taken as no limit, so
    the bound only errs on the operator's side."""
    found = []
    last = {f.address: f.metered_wh for f in previous.fills if f.side == "buy"}
    for buyer, wh, _ in interval.bids:
        published = interval.order_of("buy", buyer)
        if published is None:
            continue  # an order finding already
        metered = last.get(buyer)
        today = spent.get((buyer, interval.day), 0) if interval.day is not None else 0
        bound = max(interval_bid(published.order, metered, served, today, UNLIMITED)
                    for served in (metered is not None, False))
        if wh > bound:
            found.append(_finding(interval, f"bid of {short(buyer)}", f"{wh} Wh is more than "
                                  f"its order bids after interval {previous.n} (at most "
                                  f"{bound} Wh)", "order"))
    return found


def check_clearing(interval: PublishedInterval) -> tuple[Clearing, list[Finding]]:
    """The clearing of the published offers and bids, and where the published one differs."""
    try:
        clearing = clear([Offer(s, wh, floor) for s, wh, floor in interval.offers],
                         [Bid(b, wh, cap) for b, wh, cap in interval.bids], interval.pricing)
    except InvalidInput as err:  # e.g. one account offering twice
        return Clearing(interval.pricing, None), [_finding(interval, "", f"its offers and bids "
                                                           f"cannot be cleared: {err}")]
    found = []
    if interval.price_wei != clearing.price:
        found.append(_finding(interval, "", f"published price {interval.price_wei} wei/kWh; "
                              f"its offers and bids clear at {clearing.price}"))
    published = {(f.address, f.side): f for f in interval.fills}
    cleared = {**{(a, "sell"): wh for a, wh in clearing.sold.items() if wh},
               **{(a, "buy"): wh for a, wh in clearing.bought.items() if wh}}
    for key in sorted(set(published) | set(cleared)):
        address, side = key
        fill, wh = published.get(key), cleared.get(key, 0)
        about = f"{'seller' if side == 'sell' else 'buyer'} {short(address)}"
        if fill is None or fill.wh != wh:
            found.append(_finding(interval, about, f"published {fill.wh if fill else 0} Wh "
                                                   f"{side}; the clearing gives {wh} Wh"))
        elif wh and (side == "buy" or interval.pricing == "clear") and \
                fill.price_wei != _fill_price(clearing, address, side):
            found.append(_finding(interval, about, f"published at {fill.price_wei} wei/kWh; "
                                  f"the clearing's is {_fill_price(clearing, address, side)}"))
    return clearing, found


def _fill_price(clearing: Clearing, address: str, side: str) -> int:
    """A participant's price: the uniform one, or under pay-as-bid its fills' mean (a buyer's
    is its cap), weighted by Wh and floored. A seller's published price under pay-as-bid is
    only shown (its payout follows its fills' prices, checked in the accounts): not judged."""
    mine = [f for f in clearing.fills if (f.seller if side == "sell" else f.buyer) == address]
    wh = sum(f.wh for f in mine)
    return sum(f.price * f.wh for f in mine) // wh if wh else clearing.price


def check_readings(
    interval: PublishedInterval, clearing: Clearing, domain: ReadingDomain
) -> tuple[dict[tuple[str, str], int] | None, list[Finding]]:
    """Every boundary reading signed by its meter; each filled participant's metered Wh
    (whIn for a buyer, whOut for a seller) from its order meter's start and end readings.
    None when some filled participant's cannot be told (the accounts are not re-derived)."""
    found, forged = [], set()
    for boundary, readings in (("start", interval.start_readings),
                               ("end", interval.end_readings)):
        for r in readings:
            if not r.signed_by_meter(domain):
                forged.add(r.meter)
                found.append(_finding(interval, f"{boundary} reading of meter {short(r.meter)}",
                                      "not signed by the meter (altered or forged)", "reading"))
    start = _by_meter(interval.start_readings, domain)
    end = _by_meter(interval.end_readings, domain)
    metered: dict[tuple[str, str], int] = {}
    whole = True
    participants = [(a, "sell") for a, wh in clearing.sold.items() if wh] + [
        (a, "buy") for a, wh in clearing.bought.items() if wh]
    for address, side in participants:
        order = interval.order_of(side, address)
        meter = order.order["meter"] if order else None
        first, last = start.get(meter), end.get(meter)
        if first is None or last is None:
            whole = False
            if meter not in forged:  # a forged one is reported above
                found.append(_finding(interval, f"{side}er {short(address)}",
                                      "no signed start and end readings of its meter", "reading"))
            continue
        before, after = (first.wh_out, last.wh_out) if side == "sell" else (first.wh_in,
                                                                            last.wh_in)
        if after < before or last.timestamp < first.timestamp:
            whole = False
            found.append(_finding(interval, f"meter {short(meter)}", "its end reading is "
                                  "before its start reading or counts less", "reading"))
            continue
        metered[address, side] = after - before
    return (metered if whole else None), found


def _by_meter(readings: Iterable[SignedReading], domain: ReadingDomain) -> dict[str,
                                                                                 SignedReading]:
    """Readings signed by their meters, one per meter (a meter read twice at one boundary
    counts as unread: which one holds cannot be told)."""
    found: dict[str, SignedReading | None] = {}
    for r in readings:
        if r.signed_by_meter(domain):
            found[r.meter] = None if r.meter in found else r
    return {meter: r for meter, r in found.items() if r is not None}


def closing_counters(
    interval: PublishedInterval, domain: ReadingDomain
) -> dict[tuple[str, str], int]:
    """Each order owner's meter counter (whIn of a buyer, whOut of a seller) at the interval's
    end, from its meter's signed end reading."""
    end = _by_meter(interval.end_readings, domain)
    found = {}
    for published in interval.orders:
        reading = end.get(published.order["meter"])
        if reading is not None:
            found[published.owner, published.kind] = (
                reading.wh_out if published.kind == "sell" else reading.wh_in)
    return found


def check_accounts(
    interval: PublishedInterval, clearing: Clearing, metered: dict[tuple[str, str], int] | None,
    max_loss_bps: int = MAX_LINE_LOSS_BPS,
) -> tuple[Settled, list[Finding]]:
    """Each fill's metered Wh and payment re-derived (interval_accounts) from the clearing and
    the signed readings; what each participant owes on chain. A seller's burn is capped at
    what its payout covers at its floor less the settlement's line loss bound."""
    published = {(f.address, f.side): f for f in interval.fills}
    if metered is None:  # why is already a reading finding
        return Settled(interval.n, {key: (min(f.metered_wh, f.wh), f.paid_wei)
                                    for key, f in published.items()}, False), []
    books = account(clearing.fills, {a: wh for (a, side), wh in metered.items() if side == "buy"},
                    {a: wh for (a, side), wh in metered.items() if side == "sell"},
                    interval.pricing, floors={s: floor for s, _, floor in interval.offers},
                    max_loss_bps=max_loss_bps)
    owed, found = {}, []
    for (address, side), wh in metered.items():
        if side == "buy":
            owed[address, side] = (books.billed_wh.get(address, 0), books.paid_wei.get(address, 0))
        else:
            owed[address, side] = (books.burned_wh.get(address, 0),
                                   books.payout_wei.get(address, 0))
        fill = published.get((address, side))
        if fill is None:
            continue  # missing from the published fills: a clearing finding already
        about = f"{'seller' if side == 'sell' else 'buyer'} {short(address)}"
        if fill.metered_wh != wh:
            found.append(_finding(interval, about, f"published {fill.metered_wh} Wh metered; "
                                                   f"its meter's signed readings count {wh} Wh"))
        if fill.billed_wh is not None and fill.billed_wh != owed[address, side][0]:
            word = "billed" if side == "buy" else "burned"
            found.append(_finding(interval, about, f"published {fill.billed_wh} Wh {word}; the "
                                  f"clearing and the readings make {owed[address, side][0]} Wh"))
        what = "paid" if side == "buy" else "received"
        if fill.paid_wei != owed[address, side][1]:
            found.append(_finding(interval, about, f"{what} {fill.paid_wei} wei; the clearing "
                                  f"and the readings make {owed[address, side][1]} wei"))
    return Settled(interval.n, owed, True), found
