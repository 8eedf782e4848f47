"""Netted positions from an account's unsettled fills and the boundary readings: the fills
grouped per account and side, each group's closing reading, first baseline and span, as
the IntervalSettlement contract will take them (marketplace.intervals.batching sends them)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from marketplace.interval_accounts import max_burn_wh
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import BUY, SELL
from marketplace.intervals.store import IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (account, side)
Fills = list[dict[str, Any]]


def group_fills(fills: Iterable[dict[str, Any]], through_n: int,
                day: Callable[[int], int]) -> tuple[dict[Key, Fills], set[Key]]:
    """Unsettled fills up to through_n per (account, side), the oldest order's and day's
    only: a position names one order and may not span two days (the daily budget), so
    later fills settle after it; and the keys with such later fills behind them."""
    groups: dict[Key, Fills] = defaultdict(list)
    behind: set[Key] = set()
    for fill in fills:
        if fill["n"] > through_n:
            continue
        key = (fill["address"], fill["side"])
        first = groups[key][0] if groups[key] else None
        if first is not None and (first["order_id"] != fill["order_id"] or
                                  day(first["n"]) != day(fill["n"])):
            behind.add(key)
            continue
        groups[key].append(fill)
    return groups, behind


def paid_wei(fills: Fills) -> int:
    """What the fills were paid (a buy's charge, a sell's payout), in wei."""
    return sum(int(f["paid_wei"] or 0) for f in fills)


class Positions:
    """Builds one group's position; fills the chain settled already go to on_chain (the
    batch that holds them is the batcher's to mark)."""

    def __init__(self, istore: IntervalStore, ledger: Ledger, settings: Settings,
                 boundaries: Boundaries, on_chain: Callable[[Fills], None]):
        self.istore = istore
        self.ledger = ledger
        self.settings = settings
        self.boundaries = boundaries
        self.on_chain = on_chain
        self._wall = 0  # the contract's interval in block seconds, once read

    def build(self, fills: Fills, through_n: int) -> dict[str, Any] | None:
        """One account's netted position over its fills with a closing reading, as JSON."""
        row = self.istore.order(fills[0]["order_id"])
        meter = row["order"]["meter"]
        account, side = fills[0]["address"], fills[0]["side"]
        closing, last = None, len(fills)
        for i, fill in enumerate(fills):  # the last fill with an end reading closes it
            end = self.istore.readings(fill["n"])["end"].get(meter)
            if end is not None:
                closing, last = end, i + 1
        # None: no fill has an end reading (each metered, so billed, 0): a later boundary
        # reading closes it below, else the account's later fills behind it wait for good.
        included = fills[:last]
        settled = self.ledger.intervals.position_of(account, meter)
        if int(settled["last_interval"]) >= included[0]["n"]:
            self.on_chain(included)  # the chain settled them: a repeat is refused NOT_AFTER_LAST
            return None
        baseline, newer_than = None, int(settled["last_at"])
        if int(settled["last_interval"]) == 0:
            # The first start reading among its fills: one without (a boundary whose worker
            # had no signed reading of the board yet, its bridge away) metered, so billed, 0.
            baseline = next((r for f in included if (
                r := self.istore.readings(f["n"])["start"].get(meter)) is not None), None)
            if baseline is None:
                return None
            newer_than = int(baseline["timestamp"])
        to = self._to(included[-1])
        if closing is None or int(closing["timestamp"]) <= newer_than:
            # A boundary's reading is the board's cached one (signed each whole second, stale
            # while its bridge is away): not newer than what the account last settled on (or
            # its baseline), the contract refuses it (READING_OUT_OF_TIME), and a position
            # built alike at every boundary would never settle: a later signed one closes it.
            fresher = self._fresher(account, side, meter, to, through_n, newer_than)
            if fresher is None:
                return None  # none signed since: the next boundary's may be
            to, closing = fresher
        if baseline is not None:
            to = self._spanning(account, side, included[0]["n"], to, through_n,
                                int(closing["timestamp"]) - int(baseline["timestamp"]))
        wh = sum(int(f["billed_wh"]) for f in included)
        if side == SELL:  # never a sell the contract refuses (PRICE): fewer Wh burned
            wh = self._within_floor(account, wh, paid_wei(included), row["order"])
        return {"account": account, "side": side, "order_id": row["id"], "kind": row["kind"],
                "order": row["order"], "order_sig": self._order_sig(row),
                "closing": closing, "baseline": baseline,
                "from_interval": included[0]["n"], "to_interval": to,
                "filled_intervals": sum(1 for f in included if f["wh"] > 0),
                "wh": wh, "wei": str(paid_wei(included)),
                "fill_ids": [f["id"] for f in included]}

    def _fresher(self, account: str, side: str, meter: str, to: int, through_n: int,
                 newer_than: int) -> tuple[int, dict[str, Any]] | None:
        """The first boundary reading of a meter after interval `to` (up to through_n) signed
        after newer_than, and the position's last interval with it: that interval when no
        other fill of the account's side lies between (so the baseline's age bound spans the
        later reading; a later fill must stay after the position), a buy within its day."""
        others = {f["n"] for f in self.istore.unsettled(account) if f["side"] == side}
        n, last = self.istore.next_n(to), to
        while n is not None and n <= through_n:
            if n in others or (side == BUY and
                               self.boundaries.day(n) != self.boundaries.day(to)):
                last = None  # the span stays the position's own from here on
            elif last is not None:
                last = n
            end = self.istore.readings(n)["end"].get(meter)
            if end is not None and int(end["timestamp"]) > newer_than:
                return (to if last is None else last), end
            n = self.istore.next_n(n)
        return None

    def _spanning(self, account: str, side: str, first: int, to: int, through_n: int,
                  age_s: int) -> int:
        """A first position's last interval, moved later until the contract's bound on its
        baseline's age ((to − from + 2) intervals of block time) spans baseline to closing:
        a baseline from a board's stale cache (its bridge, or the one worker its bridge
        serves, away) is older than that, and the position was refused READING_OUT_OF_TIME
        at every boundary. Never past the account's next fill (it must stay after the
        position), through_n, or a buy's day."""
        wall = self._wall_s()
        if wall <= 0 or first - 2 + -(-age_s // wall) <= to:
            return to
        need = first - 2 + -(-age_s // wall)
        later = [f["n"] for f in self.istore.unsettled(account) if f["side"] == side and
                 f["n"] > to]
        last = min([through_n, need] + [n - 1 for n in later])
        while last > to and side == BUY and self.boundaries.day(last) != self.boundaries.day(to):
            last -= 1
        return max(to, last)

    def _wall_s(self) -> int:
        """The contract's interval in block seconds (fixed at its deployment; 0: unreadable)."""
        if not self._wall:
            try:
                self._wall = int(self.ledger.intervals.parameters()["interval_wall_s"])
            except Exception:  # the chain is away: the next position asks again
                return 0
        return self._wall

    def _to(self, last: dict[str, Any]) -> int:
        """The position's last interval: the one after its last fill when that fill closed on
        the next interval's end reading (its spill: marketplace.intervals.accounting), so the
        baseline's age bound spans it too; a buy stays within its day."""
        later = self.istore.next_n(last["n"]) if last.get("spill_wh") else None
        if later is None or (last["side"] == BUY and
                             self.boundaries.day(later) != self.boundaries.day(last["n"])):
            return last["n"]
        return later

    def _within_floor(self, account: str, wh: int, wei: int, order: dict[str, Any]) -> int:
        """A sell's Wh cut to what its payout covers at floor × (1 − the contract's loss bound)
        (the accounts cap each fill so already; fills accounted before that are cut here)."""
        most = max_burn_wh(wei, int(order["floorWeiPerKWh"]),
                           self.settings.max_line_loss_bps(), exact=True)
        if wh > most:
            log.warning("%s's sell of %s Wh for %s wei is below its floor less the line loss "
                        "bound: %s Wh burned", account, wh, wei, most)
        return min(wh, most)

    def _order_sig(self, row: dict[str, Any]) -> str:
        """The order's signature, or "0x" once the contract verified it (it keeps the hash)."""
        try:
            state = self.ledger.intervals.order_state(bytes.fromhex(row["hash"][2:]))["state"]
        except Exception:  # unreadable: the signature is always accepted
            return row["signature"]
        return "0x" if state == "verified" else row["signature"]
