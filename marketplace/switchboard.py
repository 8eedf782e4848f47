"""A deal's side of the meter boards: both parties' relays, both boards' budgets, their meters."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketplace.boards import Boards, safe_read
from marketplace.parties import participant
from marketplace.states import DealState
from marketplace.store import Store

log = logging.getLogger(__name__)

AGAIN_S = 5.0  # wall seconds a board is left after a relay-on sent to it before another


@dataclass
class Switch:
    """A relay switch a request asked for: carried out by the switchboard's own loop."""

    row: dict[str, Any]
    on: bool
    done_at: float | None = None  # unix time it was carried out (None: not yet)

    @property
    def done(self) -> bool:
        """Whether the boards were told (a board fault is logged, and counts as told)."""
        return self.done_at is not None


class Switchboard:
    """Switches and reads the boards of deals; a board fault is logged, never raised, so it
    cannot lose a deal's chain state.

    A request never talks to a board: it queues a Switch (switch_soon) that carry_out, run by
    the switchboard's own loop (and at the start of each settlement pass), sends to the boards.
    """

    def __init__(self, boards: Boards, store: Store, line_loss: float = 0.05):
        self.boards = boards
        self.store = store
        self.line_loss = line_loss  # the seller's board may give this much more than is owed
        self._intents: deque[Switch] = deque()
        self._carrying = threading.Lock()  # one carrier at a time keeps the queue's order
        self.wake: Callable[[], object] = lambda: None  # the loop that carries them out
        # Participants by address: a pass looks each deal's parties up several times. Kept
        # until forget (a seat changed here; the settlement's sweeps forget them all).
        self._parties: dict[str, dict[str, Any]] = {}
        self._on_sent: dict[str, float] = {}  # board -> monotonic time of its last relay-on
        self._lost: set[str] = set()  # boards found open by themselves, not yet seen closed
        # board -> the last relay command this process sent it: one it was told to open (a
        # close, a pause, an empty battery, a failed close) never "opened by itself".
        self._commanded: dict[str, bool] = {}

    def switch_soon(self, row: dict[str, Any], on: bool) -> Switch:
        """Queue both parties' relays of a deal to switch (as relays does); no board I/O."""
        intent = Switch(dict(row), on)
        self._intents.append(intent)
        self.wake()
        return intent

    def carry_out(self) -> int:
        """Send the queued switches to the boards, in order; how many were carried out."""
        count = 0
        with self._carrying:
            while self._intents:
                intent = self._intents.popleft()
                self.relays(intent.row, intent.on)
                intent.done_at = time.time()
                count += 1
        return count

    def party(self, address: str) -> dict[str, Any]:
        """A participant by address (cached), or NotFound."""
        found = self._parties.get(address)
        if found is None:
            found = self._parties[address] = participant(self.store, address)
        return found

    def forget(self, address: str | None = None) -> None:
        """Look a participant (None: every one) up in the store again next time."""
        if address is None:
            self._parties.clear()
        else:
            self._parties.pop(address, None)

    def board_of(self, address: str) -> str:
        """The board that measures a party."""
        return self.party(address)["board_id"]

    def read(self, board_id: str, fresh: bool = False) -> Any:
        """A board reading, or None when the board cannot be read."""
        return safe_read(self.boards, board_id, fresh)

    def signed(self, board_id: str) -> Any:
        """The board's latest signed reading (cached: no I/O), or None when it has none."""
        try:
            return self.boards.signed_reading(board_id)
        except Exception as err:  # an unknown board has no reading to offer, nor a fault
            log.warning("board %s has no signed reading: %s", board_id, err)
            return None

    def online(self, board_id: str) -> bool:
        """Whether a board can be reached (one whose check fails is taken as offline)."""
        try:
            return bool(self.boards.online(board_id))
        except Exception:
            return False

    def relays(self, row: dict[str, Any], on: bool) -> None:
        """Switch both parties' relays; off leaves a relay another active deal still needs."""
        for address in (row["seller"], row["buyer"]):
            if not on and self.store.delivering_elsewhere(address, row["id"]):
                continue
            self._set_relay(self.board_of(address), on)

    def switch(self, board: str, on: bool, wh: float | None) -> None:
        """One board for an interval: its budget (None: no limit), then its relay (closed:
        on); a fault is logged, never raised, so the other boards still switch."""
        if on:
            self._set_budget(board, wh)
        self._set_relay(board, on)

    def budget(self, row: dict[str, Any], wh: float | None) -> None:
        """Let the buyer's relay pass at most wh more Wh (None: no limit, the deal is over),
        and the seller's what all its deals still owe (seller_budget)."""
        self._set_budget(self.board_of(row["buyer"]), wh)
        self.seller_budget(row, wh)

    def seller_budget(self, row: dict[str, Any], wh: float | None) -> None:
        """Let the seller's relay pass at most Σ Wh its active deals still owe × (1 + line
        loss): a buyer's board that ignores its own budget is still stopped at the seller's.

        row owes wh more (None: row no longer counts); the seller's other active deals owe
        what their buyers' meters have not received yet; no deal left: no limit.
        """
        owed = {d["id"]: d["energy_wh"] - d["delivered_wh"]
                for d in self.store.active_sales(row["seller"])}
        if wh is None:
            owed.pop(row["id"], None)
        else:
            owed[row["id"]] = wh
        total = sum(max(float(left), 0.0) for left in owed.values())
        limit = round(total * (1 + self.line_loss), 3) if owed else None
        self._set_budget(self.board_of(row["seller"]), limit)

    def _set_relay(self, board: str, on: bool) -> None:
        if on:  # (even one that fails: it may have reached the board, or be queued for it)
            self._on_sent[board] = time.monotonic()
        self._commanded[board] = on
        try:
            self.boards.set_relay(board, on)
        except Exception as err:  # a board fault must not lose the deal's chain state
            log.error("relay of %s not switched %s: %s", board, "on" if on else "off", err)

    def _set_budget(self, board: str, wh: float | None) -> None:
        try:
            self.boards.set_budget(board, wh)
        except Exception as err:  # the relay commands still bound the deal
            log.error("budget of %s not set to %s: %s", board, wh, err)

    # -- a board that lost its relay by itself ---------------------------------------------

    def opened_itself(self, board: str) -> bool:
        """Whether the board's latest reading shows its relay open by itself, not by its
        budget: a board that (re)started (relay open, no budget set: a reboot, a restarted
        bridge's emulator) or whose failsafe opened it (budget left). A budget spent (0) is
        the end of delivery; a reading without budgets cannot tell, so it is left alone."""
        reading = self.read(board)
        if reading is None or not reading.relays:
            return False
        if reading.relays[0]:
            self._lost.discard(board)  # closed again: a next loss is logged again
            return False
        if self._commanded.get(board) is False:
            return False  # opened as told (unknown after a lease handover: then the reading's)
        budgets = getattr(reading, "budgets", ())
        return bool(budgets) and budgets[0] != 0.0

    def switch_back(self, row: dict[str, Any], board: str, left_wh: float) -> bool:
        """Give a board of an active deal that opened its relay by itself the deal's
        remaining budget (the buyer's left_wh, the seller's seller_budget) and close the relay
        again: at most once per AGAIN_S per board (a relay-on sent meanwhile counts: it may
        still be on its way), logged once per loss. Whether it was sent."""
        with self._carrying:  # a queued switch-off (a close) is carried out after, not before
            if time.monotonic() - self._on_sent.get(board, -AGAIN_S) < AGAIN_S:
                return False
            now = self.store.deal(row["id"])  # a request may have moved it (closing)
            if now is None or now["status"] != DealState.ACTIVE:
                return False
            if board not in self._lost:
                self._lost.add(board)
                log.warning("board %s of active deal %s has its relay open and no budget of its"
                            " own spent (restarted, or its failsafe): switched on again with "
                            "%.3f Wh left", board, row["id"], left_wh)
            if board == self.board_of(row["buyer"]):
                self._set_budget(board, left_wh)
            if board == self.board_of(row["seller"]):
                self.seller_budget(row, left_wh)
            self._set_relay(board, True)
            return True
