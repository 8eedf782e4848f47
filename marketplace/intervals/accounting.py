"""An ended interval's books: what each meter counted, what was billed, burned and paid.

A boundary's signed reading is the latest a board signed (up to one signing period old), taken
before the relays switch, so energy drawn (or sent) under interval k's fills between that
reading and the switch falls in interval k+1's reading window. Interval k is therefore
accounted one boundary later, once k+1's end reading is known: a participant with no fill of
that side in k+1 (its relay was open there, so all its meter counted then is k's) closes k on
the reading that ends k+1 (stored as k's end reading for its meter, so its positions close on
it too), still billed (or burned) up to what it bought (or sold). One with a fill in k+1 has
the spill billed there, within what it bought in k+1."""

from __future__ import annotations

import logging
from typing import Any

from marketplace import clearing, interval_accounts
from marketplace.intervals.orders import BUY, SELL
from marketplace.intervals.store import IntervalStore
from marketplace.rules import cost_wei

log = logging.getLogger(__name__)


class Accounting:
    """Measures each ended interval's windows and accounts intervals whose successor ended."""

    def __init__(self, istore: IntervalStore, max_loss_bps: int):
        self.istore = istore
        self.max_loss_bps = max_loss_bps  # IntervalSettlement's bound on sellers' line loss

    def run(self, prev: int | None) -> None:
        """At the boundary that ends prev: measure prev's windows, account what is ready."""
        if prev is None:
            return
        with self.istore.db.transaction():
            for fill in self.istore.fills(prev):
                self.istore.measure_fill(fill["id"], self.window(fill, prev))
        for n in self.istore.unaccounted(before=prev):  # prev's successor has not ended yet
            try:
                with self.istore.db.transaction():
                    self.account(n, self.istore.next_n(n))
            except Exception:  # one interval's books must not stop the market
                log.exception("interval %s not accounted; retried at the next boundary", n)

    def account(self, n: int, after: int | None) -> None:
        """Bill interval n's fills, with the spill its fills left in interval `after`'s window."""
        row = self.istore.interval(n)
        if row is None or not self.istore.claim_accounting(n):
            return  # another worker's boundary accounted it
        fill_rows = self.istore.fills(n)
        if not fill_rows:
            return
        spill = {(f["address"], f["side"]): self.extend(f, n, after) for f in fill_rows}
        counted = {(f["address"], f["side"]): self.window(f, n) for f in fill_rows}
        acct = interval_accounts.account(
            [clearing.Fill(**f) for f in row["fills"]],
            {a: wh for (a, side), wh in counted.items() if side == BUY},
            {a: wh for (a, side), wh in counted.items() if side == SELL}, row["pricing"],
            floors={o["seller"]: int(o["floor"]) for o in row["offers"]},
            max_loss_bps=self.max_loss_bps)
        for f in fill_rows:
            key = f["address"]
            if f["side"] == BUY:
                billed, paid = acct.billed_wh.get(key, 0), acct.paid_wei.get(key, 0)
            else:
                billed, paid = acct.burned_wh.get(key, 0), acct.payout_wei.get(key, 0)
            self.istore.account_fill(f["id"], counted[(key, f["side"])], billed, paid,
                                     spill[(key, f["side"])])

    def window(self, fill: dict[str, Any], n: int) -> int:
        """Whole Wh the fill's meter counted over interval n's window (in for buyers, out for
        sellers); 0 without a signed reading at either boundary (nothing proven)."""
        meter = self.istore.order(fill["order_id"])["order"]["meter"]
        readings = self.istore.readings(n)
        start, end = readings["start"].get(meter), readings["end"].get(meter)
        if start is None or end is None:
            return 0
        field = "whIn" if fill["side"] == BUY else "whOut"
        return max(int(end[field]) - int(start[field]), 0)

    def extend(self, fill: dict[str, Any], n: int, after: int | None) -> int:
        """Close a fill of interval n on the reading that ends `after` (the next interval)
        when its participant had no fill of that side there; the Wh that adds (its spill)."""
        if after is None or any(f["address"] == fill["address"] and f["side"] == fill["side"]
                                for f in self.istore.fills(after)):
            return 0
        meter = self.istore.order(fill["order_id"])["order"]["meter"]
        end = self.istore.readings(n)["end"].get(meter)
        later = self.istore.readings(after)["end"].get(meter)
        if end is None or later is None or int(later["timestamp"]) <= int(end["timestamp"]):
            return 0
        field = "whIn" if fill["side"] == BUY else "whOut"
        spill = max(int(later[field]) - int(end[field]), 0)
        if spill:
            self.istore.set_end_reading(n, meter, later)
        return spill


def owed_wei(fills: list[dict[str, Any]]) -> int:
    """What buy fills cost: an accounted one its charge, one not accounted yet the most it
    may (bought Wh at its price)."""
    return sum(cost_wei(int(f["price_wei"]), int(f["wh"])) if f["billed_wh"] is None
               else int(f["paid_wei"]) for f in fills if f["side"] == BUY)
