"""Every scenario on the host build and on the Python emulator: the same transcript."""

from __future__ import annotations

from pathlib import Path

import pytest

from .drivers import EmulatorDriver, HostDriver
from .scenarios import SCENARIOS, assert_same, transcript


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_host_build_and_emulator_agree(firmware: Path, name: str) -> None:
    """Both pass the scenario's own checks, and their transcripts are equal line by line."""
    expected = transcript(EmulatorDriver(), name)
    got = transcript(HostDriver(firmware), name)
    assert_same(expected, got, "host")
