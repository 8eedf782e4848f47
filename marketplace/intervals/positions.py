"""Netted positions from an account's unsettled fills and the boundary readings: the fills
grouped per account and side, each group's closing reading, first baseline and span, as
the IntervalSettlement contract will take them (marketplace.intervals.batching sends them)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from marketplace.interval_accounts import max_burn_wh
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import BUY, SELL
from marketplace.intervals.store import NOTHING_OWED, IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (account, side)
Fills = list[dict[str, Any]]


class Fresher(NamedTuple):
    """A stale position's later closing (None: none yet), its last interval, how many of
    its group's fills it takes, and whether another fill of the account stopped the search."""

    taken: int
    to: int | None
    closing: dict[str, Any] | None
    blocked: bool


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
    batch that holds them is the batcher's to mark; False: not proven yet, none is built)."""

    def __init__(self, istore: IntervalStore, ledger: Ledger, settings: Settings,
                 boundaries: Boundaries, on_chain: Callable[[Fills], bool]):
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
        through = int(settled["last_interval"])
        if through >= included[0]["n"]:
            # The chain settled them (a repeat is refused NOT_AFTER_LAST): those up to its
            # last interval only. The group may have grown since the batch that settled
            # them was built (a batch failed as forgotten, mined after all): the later
            # fills settle on their own, else they waited behind the settled ones for good.
            if not self.on_chain([f for f in fills if f["n"] <= through]):
                return None  # no receipt proves the batch that settled them: next boundary
            rest = [f for f in fills if f["n"] > through]
            return self.build(rest, through_n) if rest else None
        baseline, newer_than = None, int(settled["last_at"])
        if int(settled["last_interval"]) == 0:
            # The first start reading among its fills: one without (a boundary whose worker
            # had no signed reading of the board yet, its bridge away) metered, so billed, 0.
            baseline = next((r for f in included if (
                r := self.istore.readings(f["n"])["start"].get(meter)) is not None), None)
            if baseline is None:  # so every fill metered, and billed, 0
                self._owing_nothing(included, bool(self._others(fills)))
                return None
            newer_than = int(baseline["timestamp"])
        to = self._to(included[-1])
        if closing is None or int(closing["timestamp"]) <= newer_than:
            # A boundary's reading is the board's cached one (signed each whole second, stale
            # while its bridge is away): not newer than what the account last settled on (or
            # its baseline), the contract refuses it (READING_OUT_OF_TIME), and a position
            # built alike at every boundary would never settle: a later signed one closes it.
            found = self._fresher(fills, len(included), meter, to, through_n, newer_than)
            if found.closing is None:
                self._owing_nothing(fills[:found.taken], found.blocked)
                return None  # none signed since: the next boundary's may be
            included, to, closing = fills[:found.taken], found.to, found.closing
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

    def _fresher(self, fills: Fills, taken: int, meter: str, to: int, through_n: int,
                 newer_than: int) -> Fresher:
        """The first boundary reading of a meter after interval `to` (up to through_n) signed
        after newer_than: the position closes on it and spans its interval (a buy's within its
        day). The account's next position counts its Wh from this closing, so the search
        never passes another fill of the account's side (another order's, a later day's):
        that reading would hold the next fill's Wh, and the contract refused the next
        position OVER_METERED at every boundary. The group's own fills it passes (no end
        reading: metered, so billed, 0) join the position."""
        side, others, last = fills[0]["side"], self._others(fills), to
        n = self.istore.next_n(to)
        while n is not None and n <= through_n:
            if n in others:
                return Fresher(taken, None, None, blocked=True)
            if side != BUY or self.boundaries.day(n) == self.boundaries.day(to):
                last = n  # a buy's position stays within its day (the reading may not)
            taken = max([taken] + [i + 1 for i, f in enumerate(fills) if f["n"] == n])
            end = self.istore.readings(n)["end"].get(meter)
            if end is not None and int(end["timestamp"]) > newer_than:
                return Fresher(taken, last, end, blocked=False)
            n = self.istore.next_n(n)
        return Fresher(taken, None, None, blocked=False)

    def _others(self, fills: Fills) -> set[int]:
        """Intervals of the account's unsettled fills of the group's side outside the group,
        those not accounted yet included: batching runs through the interval just ended,
        whose fills are accounted one boundary later, and a position closing on its end
        reading settled that interval on chain without its fill's Wh (a seller's 5 Wh left
        unpaid in a chaos day, "settled on chain by no batch kept here" ever after)."""
        return {f["n"] for f in self._pending(fills[0]["address"], fills[0]["side"])
                if f["id"] not in {g["id"] for g in fills}}

    def _pending(self, account: str, side: str) -> Fills:
        """The account's fills of a side not settled, accounted or not yet, in one read (two,
        a fill the boundary worker accounted between them was in neither)."""
        return [f for f in self.istore.not_settled(account) if f["side"] == side]

    def _owing_nothing(self, fills: Fills, blocked: bool) -> None:
        """Fills no reading can close before the account's next fill: settled without a
        position when they owe nothing (0 Wh billed, 0 wei: nothing for the chain to
        record), so the account's later positions are not held behind them for good."""
        if not blocked or not fills:
            return
        if any(int(f["billed_wh"]) or int(f["paid_wei"] or 0) for f in fills):
            # Only when boundary readings went back in time (two workers' caches): the next
            # fill's position must settle first, so these wait (logged, not hidden).
            log.warning("fills %s of %s owe Wh but no reading closes them before its next "
                        "fill; they wait", [f["id"] for f in fills], fills[0]["address"])
            return
        log.info("fills %s of %s owe nothing and no reading closes them before its next "
                 "fill: settled without a position", [f["id"] for f in fills],
                 fills[0]["address"])
        self.istore.mark_settled([f["id"] for f in fills], NOTHING_OWED)

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
        later = [f["n"] for f in self._pending(account, side) if f["n"] > to]
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
