"""Prepaid budgets on relays, and a board unplugged and plugged back in while the bridge runs."""

from __future__ import annotations

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BoardError
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
