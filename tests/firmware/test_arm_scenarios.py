"""Every scenario of the suite on the STM32F030 image in Unicorn (arm_driver.ArmDriver) and on
the Python emulator: the same transcript."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .scenarios import SCENARIOS, assert_same, transcript

pytest.importorskip("unicorn", reason="unicorn not installed (make test-deps)")
from .arm_driver import ArmDriver, build_suite_image  # noqa: E402
from .drivers import EmulatorDriver  # noqa: E402


@pytest.fixture(scope="module")
def suite_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ARM image with the suite's meter pace, built once for the module."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (make system-deps installs "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return build_suite_image(tmp_path_factory.mktemp("arm-suite"))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_arm_image_and_emulator_agree(suite_elf: Path, name: str) -> None:
    """The emulated STM32 passes the scenario's own checks with the emulator's transcript."""
    expected = transcript(EmulatorDriver(), name)
    arm = ArmDriver(suite_elf)
    try:
        got = transcript(arm, name)
        assert_same(expected, got, "arm")
    except AssertionError:
        if arm.unrepresentable:  # values the meter's registers cannot carry
            pytest.xfail(f"scripted meter values the registers cannot carry "
                         f"(mV, mA, mWh, mWh): {sorted(arm.unrepresentable)}")
        raise
