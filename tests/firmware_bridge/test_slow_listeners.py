"""Readings that cost more to deliver than boards send them (a town's signing, odometer writes
and listeners on a loaded machine) neither starve the heartbeats nor queue up: the boards'
failsafes stay off and what a listener is handed is each board's newest reading.

The boards are real emulated boards on ptys; the slow listener sleeps (as a lane thread does
behind a busy interpreter) instead of burning the test machine's CPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.protocol import Reading
from tests.common import wait_for

LISTENER_S = 0.05  # what delivering one reading costs here: more than the boards' period
REPORT_S = 0.01  # each board reports five times faster than its readings can be delivered
FAILSAFE_S = 2.0  # well above a heartbeat's round trip, well below the reply timeout
TIMEOUT_S = 4.0  # the bridge's reply timeout (and how long a request waited for events)


@pytest.fixture
def slow_town() -> Iterator[tuple[Microgrid, Bridge, dict[str, list[float]], list[str]]]:
    """Three boards behind a bridge whose one reading listener is slow; (grid, bridge,
    uptimes each listener call saw by board, the boards' failsafe trips as they happen)."""
    grid = Microgrid(speed=60.0, start_hour=11.0, seed=11, failsafe_timeout=FAILSAFE_S,
                     report_interval=REPORT_S)
    for n in range(2):
        grid.add_consumer(f"c{n}", load_w=200.0)
    grid.add_producer("p0", soc=0.9)
    devices = grid.start()
    bridge = Bridge(heartbeat_s=0.2, timeout=TIMEOUT_S)
    seen: dict[str, list[float]] = {}
    trips: list[str] = []

    def slow(board_id: str, reading: Reading) -> None:
        seen.setdefault(board_id, []).append(reading.uptime_s)
        if not threading.current_thread().name.startswith("board-events"):
            return  # a request's own reply: its caller pays, not the lanes
        time.sleep(LISTENER_S)

    bridge.subscribe(slow)
    for board_id in ("c0", "c1", "p0"):  # counted on the board (its FAILSAFE event would
        board = grid.board(board_id)     # reach a listener only behind the slow lane)
        board.check_failsafe = _counting(board.check_failsafe, board_id, trips)
    try:
        for device in devices.values():
            bridge.attach(device)
        yield grid, bridge, seen, trips
    finally:
        bridge.close()
        grid.stop()


def _counting(check, board_id: str, trips: list[str]):
    """The board's own failsafe check, noting each trip."""
    def counted() -> bool:
        tripped = check()
        if tripped:
            trips.append(board_id)
        return tripped
    return counted


def test_slow_listeners_starve_no_heartbeat_and_queue_no_old_readings(slow_town) -> None:
    grid, bridge, seen, trips = slow_town
    boards = sorted(bridge.boards())
    wait_for(lambda: min(len(seen.get(b, [])) for b in boards) >= 20, timeout=60,
             what="twenty delivered readings of every board")
    # Three failsafe periods: a heartbeat that waited on the lanes (up to its reply timeout,
    # 4 s, behind a backlog growing by 80 readings a second) left its board silent past 2 s.
    time.sleep(3 * FAILSAFE_S)
    assert trips == [], f"failsafe tripped on {trips} while the listener was slow"
    # A reading asked for now is not followed by a queue of older ones: what the lane hands
    # on afterwards is never older than it (a backlog would deliver seconds-old readings).
    for board in boards:
        asked = bridge.read(board).uptime_s
        count = len(seen[board])
        wait_for(lambda b=board, c=count: len(seen[b]) >= c + 3, timeout=30,
                 what=f"{board}'s next readings")
        later = seen[board][count:]
        assert min(later) >= asked - REPORT_S - 0.1, \
            f"{board}: readings from {min(later)} s delivered after one of {asked} s"
    assert trips == []
