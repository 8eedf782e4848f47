"""A bridge feeds its boards' failsafe side by side: a board whose heartbeat hangs does not
starve the others (a thin hook holds one board's heartbeat on an Event; the boards are real
emulated boards on ptys)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from firmware_bridge.bridge import Bridge
from tests.common import wait_for


@pytest.fixture
def bridge(devices: dict[str, str]) -> Iterator[Bridge]:
    """Both boards of the grid fixture on a bridge beating every 0.1 s."""
    bridge = Bridge(heartbeat_s=0.1)
    for device in devices.values():
        bridge.attach(device)
    yield bridge
    bridge.close()


def test_a_hung_heartbeat_does_not_hold_up_the_other_boards(bridge: Bridge) -> None:
    stuck, other = sorted(bridge.boards())
    release = threading.Event()
    held = threading.Event()
    beats: list[int] = []
    stuck_client, other_client = bridge._clients[stuck], bridge._clients[other]
    real_beat = other_client.heartbeat

    def hang() -> None:  # the hook: this board's heartbeat waits until the test is done
        held.set()
        release.wait(30)

    def count() -> None:
        beats.append(1)
        real_beat()

    stuck_client.heartbeat, other_client.heartbeat = hang, count
    try:
        assert held.wait(10), "the stuck board's heartbeat never started"
        start = len(beats)
        # One after another, every round would wait on the stuck board: no beat at all after
        # the one in flight. Side by side, the other board's keep coming.
        wait_for(lambda: len(beats) >= start + 3, timeout=20,
                 what="the other board's heartbeats while one hangs")
        assert bridge.online(other)
    finally:
        release.set()
