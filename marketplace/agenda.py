"""Which deals a settlement pass visits: the ones something touched, not every live deal.

A live deal is visited again when one of these happens, and otherwise left alone:
- its view changed (a pass, a request or an auction published it: Agenda.moved), or, for a
  deal still opening, another deal of its buyer did (a buyer's deals deliver one by one);
- the escrow logged an event of it (the chain ids follow_logs read);
- one of its transactions left queued/pending (TxBook follows the records put in it);
- one of its parties' boards changed: online or not, its latest reading, its signed reading;
- a timer its state sets fell due (expiry, the offline grace and close, the disagreement's
  countdown), on the market clock;
- its state needs every pass until it moves on (closing, an expired deal being closed, an
  opening deal retrying): "hot".
A deal in `opening` that nothing touched is still seen: each pass reads the opening deals (new
ones come from any worker's auctions). A sweep visits every live deal at the first pass, every
sweep_s seconds and after a gap longer than the lease (another worker may have held it meanwhile),
so what this worker cannot see (another worker's request, a participant seated elsewhere) waits
at most that long.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from geth_private import TxRecord
from geth_private.records import TxStatus
from marketplace.clock import Clock
from marketplace.states import LIVE_DEALS, DealState
from marketplace.store import Store
from marketplace.switchboard import Switchboard

SWEEP_S = 30.0  # wall seconds between passes that visit every live deal
IN_FLIGHT = (TxStatus.QUEUED, TxStatus.PENDING)


class TxBook(dict):
    """The settlement's transactions by (deal id, action), remembering which are in flight."""

    def __init__(self) -> None:
        super().__init__()
        self._flying: dict[tuple[int, str], TxRecord] = {}

    def __setitem__(self, key: tuple[int, str], record: TxRecord) -> None:
        super().__setitem__(key, record)
        if record.status in IN_FLIGHT:
            self._flying[key] = record

    def clear(self) -> None:
        """Forget every transaction (a new process follows none)."""
        super().clear()
        self._flying.clear()

    def settled(self) -> set[int]:
        """Deals one of whose transactions left queued/pending since the last call."""
        done = [key for key, record in list(self._flying.items())
                if record.status not in IN_FLIGHT]
        for key in done:
            self._flying.pop(key, None)
        return {key[0] for key in done}


@dataclass
class _Watch:
    """What a known deal was when last visited, and what can touch it."""

    status: str
    chain_id: int | None
    buyer: str
    boards: tuple[str, ...]


class Agenda:
    """The deals each settlement pass visits (due), and what each waits for (plan)."""

    def __init__(self, store: Store, switchboard: Switchboard, clock: Clock, gap_s: float,
                 sweep_s: float = SWEEP_S):
        self.store = store
        self.switchboard = switchboard
        self.clock = clock
        self.gap_s = gap_s  # a pass this much after the last one sweeps
        self.sweep_s = sweep_s
        self.visits = 0  # deals the last pass visited
        self.swept = False  # whether the last pass visited every live deal
        self._known: dict[int, _Watch] = {}
        self._by_chain: dict[int, int] = {}
        self._by_board: dict[str, set[int]] = {}
        self._by_buyer: dict[str, set[int]] = {}
        self._seen: dict[str, tuple[Any, ...] | None] = {}  # board -> what it showed
        self._hot: set[int] = set()
        self._wake_at: dict[int, float] = {}
        self._timers: list[tuple[float, int]] = []
        self._touched: set[int] = set()
        self._moved: set[int] = set()
        self._touch_lock = threading.Lock()  # requests touch from their own threads
        self._last_pass: float | None = None
        self._last_sweep: float | None = None

    # -- what touches a deal ---------------------------------------------------------------

    def touch(self, deal_id: int) -> None:
        """Visit this deal at the next pass."""
        with self._touch_lock:
            self._touched.add(deal_id)

    def moved(self, deal_id: int) -> None:
        """A deal's view changed: visit it, and its buyer's other deals (one may start now)."""
        with self._touch_lock:
            self._moved.add(deal_id)

    def sweep_soon(self) -> None:
        """Visit every live deal at the next pass."""
        self._last_sweep = None

    # -- a pass ----------------------------------------------------------------------------

    def due(self, chain_ids: Iterable[int], settled: set[int]) -> list[dict[str, Any]]:
        """The rows this pass visits, by id, as stored now: every live deal at a sweep, else
        the ones touched (chain_ids: escrow events read; settled: transactions that left
        flight), hot or due, and the opening deals not parked."""
        now_m = time.monotonic()
        gap = self._last_pass is not None and now_m - self._last_pass > self.gap_s
        try:
            if gap or self._last_sweep is None or now_m - self._last_sweep >= self.sweep_s:
                return self._sweep(now_m)
            return self._touched_rows(chain_ids, settled)
        except Exception:  # (the store went away) what was taken is not lost: sweep next
            self.sweep_soon()
            raise

    def _touched_rows(self, chain_ids: Iterable[int], settled: set[int]) -> list[dict[str, Any]]:
        self.swept = False
        with self._touch_lock:
            ids, moved = self._touched | settled, self._moved
            self._touched, self._moved = set(), set()
        for did in moved:  # (the indexes are the pass's own: read here, not in requests)
            watch = self._known.get(did)
            ids |= self._by_buyer.get(watch.buyer, set()) if watch else set()
        ids |= moved | self._hot
        self._hot = set()
        ids |= self._timers_due()
        ids |= self._chain_touched(chain_ids)
        ids |= self._boards_changed()
        rows = {r["id"]: r for r in self.store.deals(DealState.OPENING)
                if r["id"] in ids or self._parked_as(r["id"]) != DealState.OPENING}
        for did in sorted(ids - rows.keys()):
            row = self.store.deal(did)
            if row is not None and row["status"] in LIVE_DEALS:
                rows[did] = row
            else:
                self._forget(did)
        return self._visiting([rows[did] for did in sorted(rows)])

    def plan(self, row: dict[str, Any], at: float | None) -> None:
        """After a deal's visit: what touches it from now on; at: when to visit it anyway
        (None: only when touched; at or before now: the next pass)."""
        did = row["id"]
        if row["status"] not in LIVE_DEALS:
            self._forget(did)
            return
        self._index(row)
        if at is not None and at <= self.clock.now():
            self._hot.add(did)
            self._wake_at.pop(did, None)
        elif at is not None:
            if self._wake_at.get(did) != at:
                self._wake_at[did] = at
                heapq.heappush(self._timers, (at, did))
        else:
            self._wake_at.pop(did, None)

    def finished(self) -> None:
        """A pass ended: a gap (no pass for gap_s) and the next sweep count from here."""
        self._last_pass = time.monotonic()
        if self.swept:  # (a first sweep may be long: it reads what the mirror lacks)
            self._last_sweep = self._last_pass

    def known(self) -> int:
        """How many live deals the agenda follows."""
        return len(self._known)

    # -- inside a pass ---------------------------------------------------------------------

    def _sweep(self, now_m: float) -> list[dict[str, Any]]:
        """Every live deal, with what was known of them forgotten (parties too)."""
        self._last_sweep, self.swept = now_m, True
        for index in (self._known, self._by_chain, self._by_board, self._by_buyer, self._seen,
                      self._wake_at):
            index.clear()
        self._hot, self._timers = set(), []
        with self._touch_lock:
            self._touched, self._moved = set(), set()
        self.switchboard.forget()
        return self._visiting(self.store.live_deals())

    def _visiting(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """These rows are visited: note what their boards show before the visit (a change
        during it then touches the deal at the next pass)."""
        self.visits = len(rows)
        for row in rows:
            for board in self._boards(row):
                if board not in self._seen:
                    self._seen[board] = self._shows(board)
        return rows

    def _timers_due(self) -> set[int]:
        now, due = self.clock.now(), set()
        while self._timers and self._timers[0][0] <= now:
            at, did = heapq.heappop(self._timers)
            if self._wake_at.get(did) == at:
                del self._wake_at[did]
                due.add(did)
        return due

    def _chain_touched(self, chain_ids: Iterable[int]) -> set[int]:
        """The deals of these escrow ids (one the agenda does not know is looked up)."""
        found = set()
        for cid in set(chain_ids):
            did = self._by_chain.get(cid)
            if did is None:
                row = self.store.deal_by_chain_id(cid)
                did = row["id"] if row is not None else None
            if did is not None:
                found.add(did)
        return found

    def _boards_changed(self) -> set[int]:
        """The deals of every watched board that shows something new since the last pass."""
        found: set[int] = set()
        for board, deals in list(self._by_board.items()):
            shows = self._shows(board)
            if shows != self._seen.get(board):
                self._seen[board] = shows
                found |= deals
        return found

    def _shows(self, board: str) -> tuple[Any, ...]:
        """What a pass can see of a board: online, its latest reading and signed reading."""
        return (self.switchboard.online(board), self.switchboard.read(board),
                self.switchboard.signed(board))

    def _parked_as(self, deal_id: int) -> str | None:
        """The status a known deal was parked in (None: unknown, or due anyway)."""
        watch = self._known.get(deal_id)
        return None if watch is None or deal_id in self._hot else watch.status

    def _boards(self, row: dict[str, Any]) -> tuple[str, ...]:
        try:
            return tuple(b for b in (self.switchboard.board_of(row["seller"]),
                                     self.switchboard.board_of(row["buyer"])) if b)
        except Exception:  # a party not seated (any more): nothing of a board to watch
            return ()

    def _index(self, row: dict[str, Any]) -> None:
        did = row["id"]
        self._unindex(did, keep_seen=True)
        watch = _Watch(row["status"], row["chain_deal_id"], row["buyer"], self._boards(row))
        self._known[did] = watch
        if watch.chain_id is not None:
            self._by_chain[watch.chain_id] = did
        if watch.status == DealState.OPENING:  # only an opening deal waits for its buyer's
            self._by_buyer.setdefault(watch.buyer, set()).add(did)
        for board in watch.boards:
            self._by_board.setdefault(board, set()).add(did)
            self._seen.setdefault(board, None)  # not seen before a visit: the next pass looks

    def _unindex(self, deal_id: int, keep_seen: bool = False) -> None:
        watch = self._known.pop(deal_id, None)
        if watch is None:
            return
        if self._by_chain.get(watch.chain_id) == deal_id:
            del self._by_chain[watch.chain_id]
        if watch.status == DealState.OPENING:
            _discard(self._by_buyer, watch.buyer, deal_id)
        for board in watch.boards:
            if not _discard(self._by_board, board, deal_id) and not keep_seen:
                self._seen.pop(board, None)  # no deal watches it: a later one looks afresh

    def _forget(self, deal_id: int) -> None:
        self._unindex(deal_id)
        self._hot.discard(deal_id)
        self._wake_at.pop(deal_id, None)


def _discard(index: dict[str, set[int]], key: str, deal_id: int) -> bool:
    """Take a deal out of an index entry; whether the entry still holds others."""
    entry = index.get(key)
    if entry is None:
        return False
    entry.discard(deal_id)
    if not entry:
        del index[key]
        return False
    return True
