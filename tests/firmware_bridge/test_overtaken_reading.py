"""A reading overtaken on its way to the bridge (a request's reply published after a newer event
reading of the same board) is not taken for a board restart: the meter's Wh are not doubled."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.protocol import Frame, reading_fields
from tests.common import wait_for

from .common import FAILSAFE_S


@pytest.fixture
def stepped(tmp_path: Path) -> Iterator[tuple[Microgrid, Bridge]]:
    """A stepped grid (its meters move only when the test steps them) and its bridge."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5, stepped=True, step_s=15,
                     failsafe_timeout=10 * FAILSAFE_S)
    grid.add_producer("p1", soc=0.9)
    grid.add_consumer("c1", load_w=240.0)
    devices = grid.start()
    bridge = Bridge(heartbeat_s=FAILSAFE_S, odometer_dir=tmp_path / "odometer")
    try:
        for device in devices.values():
            bridge.attach(device)
        yield grid, bridge
    finally:
        bridge.close()
        grid.stop()


def test_an_overtaken_reading_is_dropped_not_counted_as_a_restart(stepped) -> None:
    grid, bridge = stepped
    # Uptime (T=, tenths of a second) orders a board's readings: let it count past a second.
    wait_for(lambda: bridge.read("c1").uptime_s >= 1.0, what="c1's uptime to pass 1 s")
    bridge.set_relay("p1", True)
    bridge.set_relay("c1", True)
    grid.advance(600)
    older = bridge.read("c1")
    grid.advance(600)  # ten more emulated minutes of load: the counter moved on
    newer = bridge.read("c1")
    assert newer.wh_in > older.wh_in > 0
    # The older reading arrives last, as an event line the lane delivers after the reply.
    late = dataclasses.replace(older, uptime_s=newer.uptime_s - 0.5)
    bridge._on_event("c1", Frame("!", 999, "READING", tuple(reading_fields(late))))
    assert bridge.reading("c1").wh_in == newer.wh_in  # what was published stays
    grid.advance(600)
    now = bridge.read("c1")
    # Still the meter's own count: no offset of a false restart was added to it.
    assert now.wh_in == pytest.approx(grid.reading("c1").wh_in, abs=0.001)
