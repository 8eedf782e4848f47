"""Boards read through real ptys (and a loopback socket) in a process holding more than 1024
descriptors: select() cannot watch a descriptor numbered 1024 or above, the port loop can."""

from __future__ import annotations

import os
import queue
import resource
from collections.abc import Iterator

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.client import BoardClient
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Frame
from tests.common import wait_for

from .common import FAILSAFE_S, REPORT_S

FILLERS = 1100  # descriptors held open before any board: every port's number is above 1024
BOARDS = 12


@pytest.fixture
def crowded() -> Iterator[list[int]]:
    """This process with RLIMIT_NOFILE raised and FILLERS descriptors open (closed after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FILLERS + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}: cannot hold the descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(FILLERS)]
    try:
        yield fillers
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def town(crowded: list[int]) -> Iterator[Microgrid]:
    """Producers and consumers served on ptys opened after the fillers."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=3, failsafe_timeout=FAILSAFE_S,
                     report_interval=REPORT_S)
    for n in range(BOARDS // 2):
        grid.add_producer(f"p{n}", soc=0.6)
        grid.add_consumer(f"c{n}", load_w=120.0)
    grid.start()
    try:
        yield grid
    finally:
        grid.stop()


def test_boards_on_descriptors_above_1024_are_read_and_switched(town: Microgrid) -> None:
    events: queue.Queue[tuple[str, Frame]] = queue.Queue()
    clients = [BoardClient(device, timeout=2.0,
                           on_event=lambda f, board=board: events.put((board, f)))
               for board, device in town.devices.items()]
    try:
        assert min(c._port.fd for c in clients) > 1024  # the very case select() refuses
        for client in clients:
            info = client.hello()
            client.set_relay(0, True)
            assert client.read().relays == (True,)
            assert town.reading(info.board_id).relays == (True,)
        # Unsolicited readings arrive on the one loop for every board.
        seen: set[str] = set()
        while len(seen) < BOARDS:
            board, frame = events.get(timeout=5.0)
            if frame.verb == "READING":
                seen.add(board)
        for client in clients:
            client.heartbeat()
    finally:
        for client in clients:
            client.close()


def test_a_bridge_attaches_many_boards_and_notices_one_unplugged(town: Microgrid) -> None:
    bridge = Bridge(heartbeat_s=0.2, timeout=2.0)
    try:
        for device in town.devices.values():
            bridge.attach(device)
        assert len(bridge.boards()) == BOARDS
        bridge.set_relay("p1", True)  # a battery on the bus …
        bridge.set_relay("c1", True)  # … and a load taking from it
        wait_for(lambda: (r := bridge.reading("c1")) is not None and r.wh_in > 0,
                 what="c1's meter to count with its relay closed")
        town.unplug("p0")
        wait_for(lambda: not bridge.online("p0"), what="the bridge to see p0 unplugged")
        assert bridge.online("p1")
        assert bridge.read("p2").relays == (False,)
    finally:
        bridge.close()


def test_a_socket_board_above_1024(crowded: list[int]) -> None:
    grid = Microgrid(speed=600.0, seed=3, failsafe_timeout=FAILSAFE_S)
    grid.add_consumer("s1")
    url = grid.start(transport="socket")["s1"]
    try:
        client = BoardClient(url, timeout=2.0)
        try:
            assert client._port.fd > 1024
            assert client.hello().board_id == "s1"
            client.set_relay(0, True)
            assert client.read().relays == (True,)
        finally:
            client.close()
    finally:
        grid.stop()


@pytest.mark.parametrize("url", ["loop://", "rfc2217://127.0.0.1:1", "socket://nohost",
                                 "/dev/no-such-board"])
def test_ports_the_loop_cannot_serve_are_refused_clearly(url: str) -> None:
    with pytest.raises(BridgeError, match="board"):
        BoardClient(url, timeout=0.5)
