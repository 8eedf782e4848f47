"""Fixtures for the bridge tests: emulated microgrids whose boards are served on real ptys, and
the C firmware's host build."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_bridge.client import BoardClient
from firmware_bridge.emulator import Microgrid

from .common import FAILSAFE_S, REPORT_S
from .firmware_host import FIRMWARE_DIR, FirmwareBoard


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


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host build (board-host), compiled once per session into a temp dir."""
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: install gcc and make "
                    "(Debian: apt-get install build-essential) to test the C firmware")
    build = tmp_path_factory.mktemp("firmware")
    result = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE_DIR), f"BUILD={build}", "CC=gcc"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"firmware build failed:\n{result.stdout}{result.stderr}")
    return build / "board-host"


@pytest.fixture
def start(firmware: Path) -> Iterator[Callable[..., FirmwareBoard]]:
    """start(*options): a running firmware board; all are stopped after the test."""
    boards: list[FirmwareBoard] = []

    def _start(*options: str) -> FirmwareBoard:
        board = FirmwareBoard(firmware, options)
        boards.append(board)
        return board

    yield _start
    for board in boards:
        board.stop()
