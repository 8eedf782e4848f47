"""Every scenario of the suite on the simulated ATmega1284P, compared with the Python emulator.

Needs gcc-avr, avr-libc and libsimavr-dev (make test-deps installs them)."""

from __future__ import annotations

import pytest

from .avr_driver import AvrBuilds, AvrDriver
from .avr_sim import toolchain_missing
from .drivers import EmulatorDriver
from .scenarios import SCENARIOS, assert_same, transcript

pytestmark = pytest.mark.skipif(toolchain_missing() is not None, reason=str(toolchain_missing()))


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> AvrBuilds:
    """Firmware builds per BoardSpec, shared by this module's tests."""
    return AvrBuilds(tmp_path_factory.mktemp("avr-scenarios"))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_avr_and_emulator_agree(builds: AvrBuilds, name: str) -> None:
    """The simulated AVR passes the scenario's checks, its transcript equal to the emulator's."""
    expected = transcript(EmulatorDriver(), name)
    got = transcript(AvrDriver(builds), name)
    assert_same(expected, got, "avr")
