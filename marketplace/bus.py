"""The bus check: what the sellers' meters sent and the buyers' meters received must agree.

Every closed battery relay feeds every closed load on the one DC bus, so energy cannot be
followed deal by deal; it can be summed. Over every board whose relay is closed for an active
deal, Σ sellers' Δ whOut and Σ buyers' Δ whIn are accumulated over a window (bus_window_wh of
flow or bus_window_s, whichever comes first) and must agree within the line loss, the meters'
accuracy and a floor (and judged only once the flow is well above what unaligned readings may
put it off). When they do not, every deal on the bus is paused with the amounts, the
disagreement is stored and announced: a buyer's bridge that freezes its meter stops receiving.

The counters are the meters' signed ones (Switchboard.signed: whole Wh, at most one a second
per board), the very evidence the escrow pays on: a bridge that reports honest plain readings
but signs a frozen counter is judged on what it signed. A board with no signed reading yet is
not measured (its deal cannot activate before it has one). The plain readings are for display.

Readings are the latest each board signed (no I/O), so two boards' counters are never read at
the same instant: each end of a window may be off by the last step of each counter, and that
much is allowed on top of the tolerance (whose floor covers the counters' whole-Wh rounding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketplace.clock import Clock
from marketplace.events import Hub
from marketplace.settings import Settings
from marketplace.states import DealState
from marketplace.store import Store
from marketplace.switchboard import Switchboard

log = logging.getLogger(__name__)

SELLER, BUYER = "seller", "buyer"
DISAGREEMENT = "meters disagree"  # how a deal's error begins when the bus check paused it
# A window is judged once its flow is this many times its slack too: the slack (unaligned
# readings) then costs at most a third of the flow, and a frozen meter still shows.
SLACK_WINDOWS = 3.0


def agree(sellers_out: float, buyers_in: float, settings: Settings, slack: float = 0.0) -> bool:
    """Whether what the buyers received fits what the sellers sent, loss and accuracy allowed."""
    floor = settings.bus_floor_wh + slack
    high = sellers_out * (1 + settings.meter_accuracy) + floor
    low = sellers_out * (1 - settings.line_loss - settings.meter_accuracy) - floor
    return low <= buyers_in <= high


def disagreement_text(sellers_out: float, buyers_in: float) -> str:
    """The reason a paused deal shows both its parties."""
    return (f"{DISAGREEMENT}: sellers sent {sellers_out:.1f} Wh, buyers received"
            f" {buyers_in:.1f} Wh")


@dataclass
class _Meter:
    """One board in a window: its side, its counter at the start and now, its last step."""

    side: str
    base: float
    last: float
    step: float = 0.0  # the counter's last change: how far behind its reading may be
    base_step: float = 0.0


@dataclass
class BusWindow:
    """The counters of the boards on the bus since a window began (pure: no I/O, no clock)."""

    started: float
    meters: dict[str, _Meter] = field(default_factory=dict)
    deals: set[int] = field(default_factory=set)  # the active deals seen in this window

    def see(self, board: str, side: str, counter: float) -> None:
        """A board's counter in a report it just sent (on its side of the bus); the first
        sight is its base. A report that did not move is current: its step is 0."""
        meter = self.meters.get(board)
        if meter is None:
            self.meters[board] = _Meter(side, counter, counter)
            return
        meter.step = abs(counter - meter.last)
        meter.last = counter

    def flows(self) -> tuple[float, float]:
        """(Σ sellers' Wh out, Σ buyers' Wh in) since each board's base."""
        sent = sum(m.last - m.base for m in self.meters.values() if m.side == SELLER)
        got = sum(m.last - m.base for m in self.meters.values() if m.side == BUYER)
        return sent, got

    def slack(self) -> float:
        """How far unaligned readings may put the sums off: each counter's step, at both ends."""
        return sum(m.step + m.base_step for m in self.meters.values())

    def due(self, now: float, settings: Settings) -> bool:
        """Whether the window is full: enough flow (and well above its slack), or old enough."""
        flow = max(self.flows())
        if now - self.started >= settings.bus_window_s:
            return True
        return flow >= max(settings.bus_window_wh, SLACK_WINDOWS * self.slack())

    def restart(self, now: float, keep: set[str]) -> None:
        """A new window from the boards' counters now (only those in keep stay in it)."""
        self.started = now
        self.deals = set()
        self.meters = {b: _Meter(m.side, m.last, m.last, m.step, m.step)
                       for b, m in self.meters.items() if b in keep}


@dataclass(frozen=True)
class Disagreement:
    """A window whose meters did not agree."""

    sellers_out_wh: float
    buyers_in_wh: float
    boards: list[str]
    deals: list[int]


class BusCheck:
    """Runs the bus window each settling tick and pauses the bus's deals on a disagreement.

    pause(row, reason): the settlement's pause of one deal (relays off, status paused).
    """

    def __init__(
        self, store: Store, switchboard: Switchboard, clock: Clock, hub: Hub,
        settings: Settings, pause: Callable[[dict[str, Any], str], None],
    ):
        self.store = store
        self.switchboard = switchboard
        self.clock = clock
        self.hub = hub
        self.settings = settings
        self._pause = pause
        self.window = BusWindow(clock.now())
        self._reports: dict[str, Any] = {}  # board id -> the last signed reading seen

    def step(self) -> Disagreement | None:
        """One look at the bus: add the boards' counters, judge the window once it is full."""
        window, now = self.window, self.clock.now()
        active = self.store.deals(DealState.ACTIVE)
        on_bus = self._boards(active)
        for board, side in on_bus.items():
            self._see(board, side)
        # A board that left stays while its reading says its relay is still closed (an open
        # command on its way): the energy it moves is still on the bus.
        for board, meter in list(window.meters.items()):
            if board not in on_bus:
                self._see(board, meter.side)
        window.deals.update(d["id"] for d in active)
        if not window.due(now, self.settings):
            return None
        sent, got = window.flows()
        keep = set(on_bus) | {b for b in window.meters if self._closed(b)}
        if agree(sent, got, self.settings, window.slack()):
            window.restart(now, keep)
            return None
        found = Disagreement(round(sent, 3), round(got, 3), sorted(window.meters),
                             sorted(window.deals))
        window.restart(now, set())
        self._record(found, active)
        return found

    def _boards(self, active: list[dict[str, Any]]) -> dict[str, str]:
        """The boards of the active deals, each with its side of the bus."""
        boards: dict[str, str] = {}
        for deal in active:
            boards[self.switchboard.board_of(deal["seller"])] = SELLER
            boards[self.switchboard.board_of(deal["buyer"])] = BUYER
        return boards

    def _see(self, board: str, side: str) -> None:
        """Add a board's signed reading to the window if the window has not seen it yet."""
        reading = self.switchboard.signed(board)
        if reading is None or (board in self.window.meters
                               and self._reports.get(board) == reading):
            return
        self._reports[board] = reading
        self.window.see(board, side, reading.wh_out if side == SELLER else reading.wh_in)

    def _closed(self, board: str) -> bool:
        """Whether the board's latest plain reading shows its relay closed (no evidence of Wh:
        it only keeps a board that left in the window while its relay may still pass)."""
        reading = self.switchboard.read(board)
        return bool(reading is not None and reading.relays and reading.relays[0])

    def _record(self, found: Disagreement, active: list[dict[str, Any]]) -> None:
        """Pause every deal on the bus, store the disagreement, tell whoever listens."""
        reason = disagreement_text(found.sellers_out_wh, found.buyers_in_wh)
        log.error("bus check: %s (boards %s, deals %s)", reason, found.boards, found.deals)
        for row in active:
            self._pause(row, reason)
        at = self.clock.now()
        row_id = self.store.add_bus_disagreement(at, found.sellers_out_wh, found.buyers_in_wh,
                                                 found.boards, found.deals)
        self.hub.publish("bus_disagreement", {
            "id": row_id, "at": at, "sellers_out_wh": found.sellers_out_wh,
            "buyers_in_wh": found.buyers_in_wh, "boards": found.boards, "deals": found.deals,
        })
