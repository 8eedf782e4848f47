"""A settlement pass visits the deals something touched: a deal left alone for many passes is
not looked at, and still pauses, reports and expires on time.

The chain (embedded py-evm), the store and the emulated boards are the runtime's own. What the
pass can see of the boards (online, readings, signed readings) is held still by Quiet, a thin
wrapper the test moves by hand; relays and budgets still go to the real boards. The test holds
the settlement's lock, so the runtime's own loop waits and each pass here is one the test ran;
the agenda's sweep is off, so nothing but the touch itself can bring a deal back.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest

from marketplace.boards import Boards
from tests.common import wait_for
from tests.marketplace.common import active_deal, ready

IDLE_PASSES = 20


class Quiet(Boards):
    """The runtime's boards, with what a pass sees of them held still until the test moves it."""

    def __init__(self, real: Boards):
        self.real = real
        self.shown: dict[str, tuple] = {}  # board -> (online, reading, signed reading)

    def hold(self, board: str, online: bool | None = None) -> None:
        """Show the board as it is now (or, given online, as online or not) until moved."""
        now = (self.real.online(board), self.real.reading(board), self.real.signed_reading(board))
        self.shown[board] = now if online is None else (online, *now[1:])

    def serves(self, board_id: str) -> bool:
        return self.real.serves(board_id)

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        self.real.set_relay(board_id, on, relay)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        self.real.set_budget(board_id, wh, relay)

    def online(self, board_id: str) -> bool:
        return self.shown[board_id][0] if board_id in self.shown else self.real.online(board_id)

    def reading(self, board_id: str):
        return self.shown[board_id][1] if board_id in self.shown else self.real.reading(board_id)

    def read(self, board_id: str):
        return self.reading(board_id)

    def signed_reading(self, board_id: str):
        if board_id in self.shown:
            return self.shown[board_id][2]
        return self.real.signed_reading(board_id)


@contextmanager
def passes_by_hand(runtime):
    """The settlement's lock held (its loop waits), its sweeps off, the boards held still."""
    settlement, switchboard = runtime.market.settlement, runtime.market.switchboard
    real = switchboard.boards
    quiet = Quiet(real)
    for board in ("pv-alice", "load-carol"):
        quiet.hold(board)
    agenda = settlement.agenda
    with settlement.lock:
        switchboard.boards = quiet
        agenda.sweep_s = agenda.gap_s = math.inf
        try:
            yield quiet
        finally:
            switchboard.boards = real


def settle_down(settlement) -> None:
    """Passes until one visits no deal (what the runtime's last passes touched is seen)."""
    for _ in range(10):
        settlement.advance_all()
        if settlement.agenda.visits == 0:
            return
    pytest.fail(f"passes still visit {settlement.agenda.visits} deals with nothing moving")


def idle(settlement, passes: int = IDLE_PASSES) -> None:
    """Passes with nothing new: none visits a deal."""
    for _ in range(passes):
        settlement.advance_all()
        assert settlement.agenda.visits == 0


def delivering(runtime, clock, wh=300):
    """alice sells carol wh Wh; the deal once delivering."""
    return active_deal(runtime, clock, ready(runtime, wh=wh), wh)


def test_an_untouched_deal_pauses_on_time_and_resumes(runtime, clock):
    deal = delivering(runtime, clock)
    market = runtime.market
    settlement, grace = market.settlement, market.settings.offline_grace_s
    with passes_by_hand(runtime) as boards:
        settle_down(settlement)
        assert settlement.agenda.known() == 1
        idle(settlement)
        boards.hold("load-carol", online=False)  # the buyer's meter goes away
        settlement.advance_all()
        assert settlement.agenda.visits == 1
        assert "load-carol offline" in market.deal(deal["id"])["error"]
        settle_down(settlement)
        clock.advance(grace - 1)
        idle(settlement)
        assert market.deal(deal["id"])["status"] == "active"  # within the grace
        clock.advance(1)  # the grace is over: the timer, not a sweep, brings the deal back
        settlement.advance_all()
        assert settlement.agenda.visits == 1
        paused = market.deal(deal["id"])
        assert paused["status"] == "paused" and "offline: paused" in paused["error"]
        assert not runtime.bridge.read("pv-alice").relays[0]  # the seller stops supplying
        settle_down(settlement)
        idle(settlement)
        boards.hold("load-carol", online=True)  # back before the deal was ended
        settlement.advance_all()
        assert market.deal(deal["id"])["status"] == "active"
        assert runtime.bridge.read("pv-alice").relays[0]


def test_a_new_signed_reading_is_reported_at_the_next_pass(runtime, clock):
    deal = delivering(runtime, clock)
    market = runtime.market
    settlement, step = market.settlement, market.settings.step_wh
    with passes_by_hand(runtime) as boards:
        settle_down(settlement)
        idle(settlement)
        stored = runtime.store.deal(deal["id"])
        reported, base = stored["reported_wh"], int(stored["baseline_wh"])
        # The real meter counted on meanwhile; the pass sees its signed reading once shown.
        wait_for(lambda: (lambda r: r is not None and r.wh_in - base >= reported + step)(
            runtime.bridge.signed_reading("load-carol")), what="a step's worth of signed Wh")
        before = settlement.transactions().get((deal["id"], "report"))
        boards.hold("load-carol")
        settlement.advance_all()
        assert settlement.agenda.visits == 1
        assert runtime.store.deal(deal["id"])["reported_wh"] >= reported + step
        record = settlement.transactions()[(deal["id"], "report")]
        assert record is not before  # a new delivery report is on its way to the escrow


@pytest.mark.parametrize("app", [{"DEAL_TTL_S": 60}], indirect=True)
def test_an_untouched_deal_expires_on_time(runtime, clock):
    deal = delivering(runtime, clock, wh=300)
    market = runtime.market
    settlement = market.settlement
    with passes_by_hand(runtime):
        settle_down(settlement)
        expires_at = market.deal(deal["id"])["expires_at"]
        clock.advance(expires_at - clock.now() - 1)
        idle(settlement)
        assert (deal["id"], "expire") not in settlement.transactions()
        clock.advance(2)
        runtime.backend.time_travel(int(clock.now()) + 1)  # the chain's clock passes it too
        runtime.backend.mine()
        settlement.advance_all()  # the expiry's timer brings the deal back at once
        assert (deal["id"], "expire") in settlement.transactions()
        assert not runtime.bridge.read("load-carol").relays[0]
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=30, what="the expired deal to close")
    assert closed["close_reason"] == "expired"
