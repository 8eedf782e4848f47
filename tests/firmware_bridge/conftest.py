"""Fixtures for the bridge tests: emulated microgrids whose boards are served on real ptys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_bridge.client import BoardClient
from firmware_bridge.emulator import Microgrid

from .common import FAILSAFE_S, REPORT_S


@pytest.fixture
def grid() -> Iterator[Microgrid]:
    """A started microgrid with producer p1 and consumer c1 (noon, 600x speed)."""
    microgrid = Microgrid(speed=600.0, start_hour=11.0, seed=7,
                          failsafe_timeout=FAILSAFE_S, report_interval=REPORT_S)
    microgrid.add_producer("p1", soc=0.5)
    microgrid.add_consumer("c1", load_w=240.0)
    microgrid.start()
    yield microgrid
    microgrid.stop()


@pytest.fixture
def devices(grid: Microgrid) -> dict[str, str]:
    """{board_id: pty device path} of the grid fixture."""
    return grid.devices


@pytest.fixture
def board(devices: dict[str, str]) -> Iterator[BoardClient]:
    """A BoardClient on the producer board p1, over its pty."""
    client = BoardClient(devices["p1"], timeout=1.0)
    yield client
    client.close()
