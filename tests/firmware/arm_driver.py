"""The scenario suite's driver for the STM32F030 image in Unicorn (arm_emu.ArmBoard): the
spec goes into the image's .data (kind, relays, failsafe, report period), the flash config
page (board id) and the millisecond counter at main(); the scripted meter answers USART2's
real Modbus requests 20 ms after each, as PZEM-017 register frames. Built with the suite's
meter pace (a request every 100 ms, 100 ms timeout, no retry), like the other HALs'
simulation modes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadInputRegistersResponse

from .arm_emu import FLASH, GPIOB, USART1, USART2, ArmBoard, modbus_crc
from .drivers import METER_LATENCY_MS
from .scenarios import BoardSpec, Driver

ARM_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware" / "arm"
# The suite's meter pace, and a meter of 1 mWh and 1 mA steps (a PZEM-017 has 1 Wh and
# 10 mA), so the suite's finer scripted values go through the same code unrounded.
SUITE_DEFS = ("-DMETER_PERIOD_MS=100u -DPZEM_TIMEOUT_MS=100u -DMETER_RETRIES=0u "
              "-DPZEM_MWH_PER_STEP=1u -DPZEM_MA_PER_STEP=1")
CONFIG_PAGE = 0x0800FC00
RELAY_PINS = (0, 1, 10, 11)
FRAMER = FramerRTU(DecodePDU(False))
UID = bytes(range(12))


def build_suite_image(build: Path) -> Path:
    """board-arm.elf with the suite's meter pace; its directory holds the .bin too."""
    subprocess.run(["make", "-s", "-C", str(ARM_DIR), f"BUILD={build}", f"ARM_DEFS={SUITE_DEFS}"],
                   check=True, capture_output=True, text=True)
    return build / "board-arm.elf"


def config_page(board_id: str, meter_addr: int = 1) -> bytes:
    """The 40-byte record config_flash.c keeps: magic, address, id length, id, CRC-16."""
    body = (0x47424431).to_bytes(4, "little") + bytes([meter_addr, len(board_id)])
    body += board_id.encode("ascii").ljust(32, b"\0")
    return body + modbus_crc(body).to_bytes(2, "little")


class ArmDriver(Driver):
    """One emulated STM32F030 board under the scenario clock."""

    name = "arm"

    def __init__(self, elf: Path):
        self.elf, self.image = elf, elf.with_suffix(".bin").read_bytes()
        self.board: ArmBoard | None = None
        self.out = bytearray()
        self.values = (0, 0, 0, 0, 0)
        self.sampled = self.values  # what the request in flight carries
        self.plugged = True
        self.answer_at: int | None = None
        # Values the suite build's meter registers cannot carry (10 mV steps, 16-bit mA,
        # 32-bit mWh): the board then reads other values, and its transcript differs.
        self.unrepresentable: set[tuple[int, int, int, int]] = set()

    def _patched_image(self, spec: BoardSpec, sym: dict[str, int]) -> bytes:
        """The image with the spec's hal_config in .data's initial values."""
        image = bytearray(self.image)
        at = sym["_data_load"] - FLASH + sym["config"] - sym["_data_start"]
        image[at + 5] = 0 if spec.kind == "producer" else 1
        image[at + 6] = spec.relays
        image[at + 8:at + 16] = (spec.failsafe_ms.to_bytes(4, "little")
                                 + spec.report_ms.to_bytes(4, "little"))
        return bytes(image)

    def open(self, spec: BoardSpec) -> None:
        flash = bytearray(b"\xff" * (64 * 1024))
        record = config_page(spec.board_id)
        flash[CONFIG_PAGE - FLASH:CONFIG_PAGE - FLASH + len(record)] = record
        probe = ArmBoard(self.elf, self.image, UID, bytes(flash))
        image = self._patched_image(spec, probe.sym)
        self.board = ArmBoard(self.elf, image, UID, bytes(flash))
        self.board.run_to("main")
        self.board.set_word(self.board.sym["millis"], spec.millis_start)
        self.plugged = spec.meter_plugged
        self.now = 0
        self.board.run()
        self._wire()

    def close(self) -> None:
        self.board = None

    def _wire(self) -> None:
        """Take what the board sent; a Modbus request gets its answer scheduled, with what
        the meter measures now (a Modbus meter samples at the request)."""
        assert self.board is not None
        self.out += self.board.transmit(USART1)
        if self.board.transmit(USART2) and self.plugged:
            self.answer_at, self.sampled = self.now + METER_LATENCY_MS, self.values

    def send_line(self, line: bytes) -> None:
        assert self.board is not None
        self.board.receive(USART1, line)
        self.board.run()
        self._wire()

    def read_line(self, timeout_s: float = 5.0) -> bytes:
        line, newline, rest = bytes(self.out).partition(b"\n")
        assert newline, f"arm: no line from the board (has {bytes(self.out)!r})"
        self.out = bytearray(rest)
        return line

    def pending_lines(self) -> list[bytes]:
        *lines, rest = bytes(self.out).split(b"\n")
        self.out = bytearray(rest)
        return lines

    def set_meter(self, mv: int, ma: int, dw: int, mwh_in: int, mwh_out: int,
                  soc_milli: int = -1, pv_dw: int = -1) -> None:
        self.values = (mv, ma, dw, mwh_in, mwh_out)
        if mv % 10 or max(mwh_in, mwh_out) > 0xFFFFFFFF or abs(ma) > 0xFFFF:
            self.unrepresentable.add((mv, ma, mwh_in, mwh_out))

    def unplug_meter(self) -> None:
        self.plugged, self.answer_at = False, None

    def plug_meter(self) -> None:
        self.plugged = True

    def _answer(self) -> None:
        """The meter's registers for the scripted values (the suite build's units: 10 mV,
        1 mA, 0.1 W, 1 mWh; a PZEM-017 has 10 mA and 1 Wh)."""
        assert self.board is not None
        mv, ma, dw, mwh_in, mwh_out = self.sampled
        mwh = max(mwh_in, mwh_out)  # the one counter a PZEM has
        regs = [mv // 10, abs(ma), abs(dw) & 0xFFFF, abs(dw) >> 16, mwh & 0xFFFF, mwh >> 16,
                0, 0]
        frame = FRAMER.buildFrame(ReadInputRegistersResponse(registers=regs, dev_id=1))
        self.board.receive(USART2, frame)

    def advance_ms(self, ms: int) -> None:
        assert self.board is not None
        end = self.now + ms
        while self.now < end:
            wake = (self.board.word(self.board.sym["hal_arm_wake_at"]) - self.board.millis)
            wake = wake & 0xFFFFFFFF or 1
            step = min(wake, end - self.now)
            if self.answer_at is not None:
                step = min(step, max(self.answer_at - self.now, 0) or 1)
            self.now += step
            self.board.set_word(self.board.sym["millis"], self.board.millis + step)
            if self.answer_at is not None and self.now >= self.answer_at:
                self.answer_at = None
                self._answer()
            self.board.run()
            self._wire()

    def relays(self) -> str:
        assert self.board is not None
        return "".join("1" if self.board.odr >> pin & 1 else "0"
                       for pin in RELAY_PINS[:self.board.word(self.board.sym["config"] + 6) & 0xFF])


__all__ = ["ArmDriver", "GPIOB", "build_suite_image"]
