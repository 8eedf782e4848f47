"""The host build for the scenario suite, compiled once per session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware"


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """board-host built with the Makefile's -Werror flags."""
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found (Debian: apt-get install build-essential)")
    build = tmp_path_factory.mktemp("firmware")
    result = subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), f"BUILD={build}", "CC=gcc"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"firmware build failed:\n{result.stdout}{result.stderr}")
    return build / "board-host"
