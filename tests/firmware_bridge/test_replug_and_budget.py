"""Prepaid budgets on relays, and a board unplugged and plugged back in while the bridge runs."""

from __future__ import annotations

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import ERR_CHECKSUM, ERR_REPLAY, BoardError
from tests.common import wait_for

FAILSAFE_S = 0.6


@pytest.fixture
def linked(tmp_path):
    """A producer and a consumer served on ptys behind stable links, and a bridge on the links."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=3, failsafe_timeout=FAILSAFE_S,
                     report_interval=0.1)
    grid.add_producer("p1")
    grid.add_consumer("c1", load_w=240.0)
    links = grid.start(link_dir=tmp_path / "by-id")
    bridge = Bridge(heartbeat_s=0.2, timeout=0.5, max_backoff_s=0.4)
    for link in links.values():
        bridge.attach(link)
    yield grid, bridge, links
    bridge.close()
    grid.stop()


def test_a_budget_opens_the_relay_by_itself(linked):
    grid, bridge, _ = linked
    events = []
    bridge.subscribe_events(lambda board, verb, args: events.append((board, verb, args)))
    start = bridge.read("c1").wh_in
    bridge.set_budget("c1", 5.0)
    bridge.set_relay("p1", True)
    bridge.set_relay("c1", True)
    wait_for(lambda: ("c1", "EXHAUSTED", ("0",)) in events, timeout=10, what="EXHAUSTED")
    reading = bridge.read("c1")
    assert reading.relays == (False,) and reading.budgets == (0.0,)
    step_wh = 240.0 * 0.05 * 600 / 3600  # one physics tick of the load may overshoot
    assert 5.0 <= reading.wh_in - start <= 5.0 + step_wh + 0.01
    with pytest.raises(BoardError, match="budget-exhausted"):
        bridge.set_relay("c1", True)
    bridge.set_budget("c1", None)
    bridge.set_relay("c1", True)
    assert bridge.read("c1").relays == (True,) and bridge.read("c1").budgets == (None,)


def test_unplug_and_replug_without_a_repeated_relay_command(linked):
    grid, bridge, links = linked
    bridge.set_relay("p1", True)
    grid.unplug("p1")
    wait_for(lambda: not bridge.online("p1"), timeout=5, what="the bridge to notice")
    # Unplugged longer than the failsafe: the board opened its relay by itself.
    wait_for(lambda: grid.reading("p1").relays == (False,), timeout=5, what="failsafe")
    grid.replug("p1")
    wait_for(lambda: bridge.online("p1"), timeout=5, what="the bridge to reconnect")
    # The bridge learns the board's real state and does not close the relay again itself.
    wait_for(lambda: bridge.reading("p1").relays == (False,), timeout=5, what="fresh state")
    assert grid.reading("p1").relays == (False,)
    bridge.set_relay("p1", True)  # the host decides, with a fresh command
    assert bridge.read("p1").relays == (True,)
    # F8: the bridge's own traffic never trips the replay protection, across the replug.
    assert grid.board("p1").refusals[ERR_REPLAY] == grid.board("p1").refusals[ERR_CHECKSUM] == 0


def test_a_board_reset_under_the_bridge_costs_no_command(linked):
    """F8: a board that powers on again (forgetting its session) while the bridge keeps the
    port answers ERR 6; the bridge opens a new session and its command goes through once."""
    grid, bridge, _ = linked
    before = bridge.boards()["c1"]
    grid.board("c1").power_on()
    bridge.set_relay("c1", True)
    assert grid.reading("c1").relays == (True,)
    bridge.set_relay("c1", False)
    assert bridge.read("c1").relays == (False,)
    board = grid.board("c1")
    assert board.refusals[ERR_REPLAY] == board.refusals[ERR_CHECKSUM] == 0
    assert bridge.boards()["c1"] == before


def test_the_bridge_opens_a_new_session_before_ids_run_out(linked):
    """F8: request ids only grow within a session, so the client HELLOs again before they
    would wrap, and before the board's event ids would; nothing is refused on the way."""
    grid, bridge, _ = linked
    board = grid.board("c1")
    client = bridge._client("c1")  # white box: 65535 real requests would take minutes
    first = board.session
    client._next_id = 0xFFFF
    bridge.set_relay("c1", True)  # id 65535, the last one
    assert board.session == first
    bridge.set_relay("c1", False)  # a new session first: ids start at 1 again
    assert board.session != first and board.last_id < 10
    second = board.session
    board.event_seq = 0xF100  # the board has sent nearly all the event ids it may
    board.drain_events()
    wait_for(lambda: client._last_event > 0xF100, timeout=5, what="a late-numbered reading")
    bridge.read("c1")
    assert board.session != second and board.event_seq < 10
    assert board.refusals[ERR_REPLAY] == board.refusals[ERR_CHECKSUM] == 0
