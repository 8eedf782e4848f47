"""Every scenario on the host build and on the Python emulator: the same transcript."""

from __future__ import annotations

from pathlib import Path

import pytest

from .drivers import EmulatorDriver, HostDriver
from .scenarios import SCENARIOS, Driver


def transcript(driver: Driver, name: str) -> list[tuple[str, ...]]:
    """Run one scenario on a driver, closing it even when the scenario fails."""
    try:
        return SCENARIOS[name](driver)
    finally:
        driver.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_host_build_and_emulator_agree(firmware: Path, name: str) -> None:
    """Both pass the scenario's own checks, and their transcripts are equal line by line."""
    expected = transcript(EmulatorDriver(), name)
    got = transcript(HostDriver(firmware), name)
    for n, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, f"line {n}: host {have} != emulator {want}"
    assert len(got) == len(expected)
