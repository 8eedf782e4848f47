"""Every firmware target builds with -Werror and the core's WARN flags, and fits its chip:
host (gcc), AVR (ATmega1284P, avr-gcc) and ARM (STM32F030C8, arm-none-eabi-gcc). Flash and RAM
per target are printed (pytest -s shows them); a target whose toolchain is missing is skipped,
naming the Debian packages `make system-deps` installs."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware"
WARN_FLAGS = ("-Werror", "-Wpedantic", "-Wshadow", "-Wconversion")  # firmware/Makefile's WARN
SIZE_LINE = re.compile(r"flash (\d+) B, RAM (\d+) B static")


@dataclass(frozen=True)
class Target:
    """One firmware build: its make directory, output, tools and the chip's limits."""

    name: str
    chip: str
    directory: Path
    elf: str
    tools: tuple[str, ...]
    packages: str
    size_tool: str
    flash_max: int | None  # bytes the image may take (None: a host program)
    ram_max: int | None    # static RAM that leaves the stack its room


TARGETS = {
    "host": Target("host", "x86-64 Linux", FIRMWARE, "board-host", ("make", "gcc"),
                   "gcc make", "size", None, None),
    # 128 KB flash, 16 KB SRAM; the core needs ~0.5 KB of stack on top of static RAM.
    "avr": Target("avr", "atmega1284p", FIRMWARE / "avr", "board-avr.elf",
                  ("make", "avr-gcc", "avr-objcopy", "avr-size"), "gcc-avr avr-libc",
                  "avr-size", 128 * 1024, 16 * 1024 - 1024),
    # 64 KB flash less the config page; 8 KB SRAM less the 1 KB stack the linker script keeps.
    "arm": Target("arm", "stm32f030c8", FIRMWARE / "arm", "board-arm.elf",
                  ("make", "arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-size"),
                  "gcc-arm-none-eabi libnewlib-arm-none-eabi", "arm-none-eabi-size",
                  63 * 1024, 7 * 1024),
}


def sizes(target: Target, elf: Path) -> tuple[int, int]:
    """(flash, static RAM) in bytes: .text + .data, .data + .bss (GNU size -A)."""
    out = subprocess.run([target.size_tool, "-A", str(elf)], check=True, capture_output=True,
                         text=True).stdout
    section = {m[1]: int(m[2]) for m in re.finditer(r"^(\.\w+)\s+(\d+)", out, re.MULTILINE)}
    rodata = section.get(".rodata", 0)  # a host ELF keeps it apart; the MCU scripts fold it in
    data, bss = section.get(".data", 0), section.get(".bss", 0)
    return section[".text"] + rodata + data, data + bss


def build(target: Target, build_dir: Path, *options: str) -> str:
    """Run the target's make into build_dir; its output, or skip/fail saying why."""
    if not (target.directory / "Makefile").exists():
        pytest.skip(f"no {target.name} target in this tree ({target.directory} has no Makefile)")
    missing = [tool for tool in target.tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make system-deps installs "
                    f"{target.packages})")
    done = subprocess.run(
        ["make", "-C", str(target.directory), f"BUILD={build_dir}", *options],
        capture_output=True, text=True, timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{target.name} build failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def arm_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The default ARM build, made once for the tests that only read it: directory, output."""
    build_dir = tmp_path_factory.mktemp("arm")
    return build_dir, build(TARGETS["arm"], build_dir)


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_builds_with_werror_and_fits(name: str, tmp_path: Path,
                                            request: pytest.FixtureRequest) -> None:
    """make builds the target with every WARN flag as an error, and it fits its chip."""
    target = TARGETS[name]
    if name == "arm":
        tmp_path, output = request.getfixturevalue("arm_build")
    else:
        output = build(target, tmp_path)
    compile_lines = [line for line in output.splitlines() if " -o " in line and ".c" in line]
    assert compile_lines, f"no compiler command in the make output:\n{output}"
    for flag in WARN_FLAGS:
        assert all(flag in line.split() for line in compile_lines), (flag, compile_lines)
    flash, ram = sizes(target, tmp_path / target.elf)
    print(f"firmware {target.name} ({target.chip}): flash {flash} B, RAM {ram} B static")
    own = SIZE_LINE.search(output)
    if target.flash_max is not None:
        assert own is not None, f"the {name} Makefile printed no size line:\n{output}"
        assert (int(own[1]), int(own[2])) == (flash, ram), (own[0], flash, ram)
        assert flash <= target.flash_max, f"{flash} B of flash > {target.flash_max}"
        assert ram <= target.ram_max, f"{ram} B of static RAM > {target.ram_max}"


def test_arm_variants_build(tmp_path: Path) -> None:
    """A producer with four relays and a millisecond counter near its wrap builds too."""
    output = build(TARGETS["arm"], tmp_path, "ARM_KIND=BOARD_PRODUCER", "ARM_RELAYS=4",
                   f"MILLIS_START={0xFFFFFFFF - 3000}")
    assert "-DARM_KIND=BOARD_PRODUCER" in output and "-DARM_RELAYS=4u" in output


def arm_symbols(elf: Path) -> dict[str, int]:
    """Symbol name -> address, from arm-none-eabi-nm."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], check=True, capture_output=True,
                         text=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in map(str.split, out.splitlines())
            if len(parts) == 3}


def test_arm_image_starts_with_a_complete_vector_table(arm_build: tuple[Path, str]) -> None:
    """The .bin st-flash writes at 0x08000000 begins with the stack top and 47 Thumb handler
    addresses (none 0, so no stray interrupt jumps to address 0), and stops before the config
    page, so reflashing the firmware keeps a board's id and meter address."""
    tmp_path = arm_build[0]
    image = (tmp_path / "board-arm.bin").read_bytes()
    symbols = arm_symbols(tmp_path / "board-arm.elf")
    words = struct.unpack("<48I", image[:48 * 4])
    assert words[0] == 0x20000000 + 8 * 1024 == symbols["_stack_top"]
    assert words[1] == symbols["reset_handler"] | 1
    assert words[15] == symbols["systick_irq"] | 1
    assert words[16 + 27] == symbols["usart1_irq"] | 1
    assert words[16 + 28] == symbols["usart2_irq"] | 1
    for i, handler in enumerate(words[1:], start=1):
        assert handler & 1 and 0x08000000 <= handler < 0x08000000 + len(image), (i, hex(handler))
    assert symbols["_config_page"] == 0x0800FC00
    assert 0x08000000 + len(image) <= symbols["_config_page"]
