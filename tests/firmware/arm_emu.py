"""The STM32F030 build (board-arm.elf) run instruction by instruction in Unicorn's Cortex-M0,
with the few peripherals it touches modelled by hand. Not a simulator of the chip: registers
are plain memory, interrupts are delivered by calling their handlers between main-loop passes
(the main loop is stopped at each WFI), and time is the firmware's own millisecond counter,
moved by the test. Enough to run the real image's startup, UART rings, Modbus master, flash
writes and the protocol core."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from unicorn import (
    UC_ARCH_ARM,
    UC_HOOK_CODE,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_WRITE,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    Uc,
)
from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_PC, UC_ARM_REG_SP, UC_CPU_ARM_CORTEX_M0

FLASH, FLASH_SIZE = 0x08000000, 64 * 1024
RAM, RAM_SIZE = 0x20000000, 8 * 1024
UID = 0x1FFFF7AC
USART1, USART2 = 0x40013800, 0x40004400
GPIOB = 0x48000400
FLASH_SR, FLASH_CR, FLASH_AR, PER, STRT = 0x4002200C, 0x40022010, 0x40022014, 1 << 1, 1 << 6
PAGE = 1024
ISR, RDR, TDR, CR1 = 0x1C, 0x24, 0x28, 0x00
RXNE, TXE, TXEIE = 1 << 5, 1 << 7, 1 << 7
RETURN = FLASH + FLASH_SIZE - 0x1000  # where a called handler "returns" to: the stop address
STACK_FILL = b"\xa5"
PASS_LIMIT = 2_000_000  # instructions one main-loop pass may take before it counts as a hang


def modbus_crc(data: bytes) -> int:
    """Modbus CRC-16 (pzem_crc16), which the flash config record also carries."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def symbols(elf: Path) -> dict[str, int]:
    """Every symbol's address, local statics included (arm-none-eabi-nm)."""
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], check=True, capture_output=True,
                         text=True).stdout
    found = {}
    for addr, _kind, name in (line.split() for line in out.splitlines() if len(line.split()) == 3):
        found.setdefault(re.sub(r"\.\d+$", "", name), int(addr, 16))
    return found


def wfi_addresses(elf: Path) -> list[int]:
    """Where the image executes WFI: each is where a main-loop pass ends."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], check=True,
                         capture_output=True, text=True).stdout
    return [int(m[1], 16) for m in re.finditer(r"^ *([0-9a-f]+):\s+bf30\s+wfi", out, re.M)]


class ArmBoard:
    """One STM32F030C8 running the image; `flash` carries over to a reboot (a new ArmBoard)."""

    def __init__(self, elf: Path, image: bytes, uid: bytes, flash: bytes | None = None):
        self.sym = symbols(elf)
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M0)
        for base, size in ((FLASH, FLASH_SIZE), (RAM, RAM_SIZE), (0x1FFFF000, 0x1000),
                           (0x40000000, 0x30000), (0x48000000, 0x2000), (0xE000E000, 0x1000)):
            self.uc.mem_map(base, size)
        self.uc.mem_write(FLASH, flash if flash is not None else b"\xff" * FLASH_SIZE)
        self.uc.mem_write(FLASH, image)
        self.uc.mem_write(UID, uid)
        self.uc.mem_write(RAM, STACK_FILL * RAM_SIZE)  # what the stack has not touched keeps it
        self.writes: list[tuple[int, int]] = []  # (address, value) of peripheral writes
        self.odr = 0  # GPIOB's outputs, as BSRR and BRR writes leave them
        self.sent = {USART1: bytearray(), USART2: bytearray()}
        self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_write, begin=0x40000000, end=0x48001FFF)
        self.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_write, begin=0xE000E000, end=0xE000EFFF)
        # The flash controller is never busy and never fails: its status reads 0.
        self.uc.hook_add(UC_HOOK_MEM_READ, lambda uc, *_: uc.mem_write(FLASH_SR, bytes(4)),
                         begin=FLASH_SR, end=FLASH_SR + 3)
        for addr in wfi_addresses(elf):
            self.uc.hook_add(UC_HOOK_CODE, self._on_wfi, begin=addr, end=addr)
        self.wfi_at: int | None = None
        self.uc.reg_write(UC_ARM_REG_SP, self.word(FLASH))
        self.pc = self.word(FLASH + 4)  # reset_handler, with its Thumb bit

    def _on_write(self, uc: Uc, access: int, address: int, size: int, value: int, data: object
                  ) -> None:
        self.writes.append((address, value))
        if address == GPIOB + 0x18:  # BSRR: set the low half, reset the high half
            self.odr = (self.odr | value & 0xFFFF) & ~(value >> 16)
        elif address == GPIOB + 0x28:  # BRR
            self.odr &= ~value
        if address == FLASH_CR and value & PER and value & STRT:  # a page erase: all ones
            page = self.word(FLASH_AR) & ~(PAGE - 1)
            uc.mem_write(page, b"\xff" * PAGE)
        for base, out in self.sent.items():
            if address == base + TDR:
                out.append(value & 0xFF)

    def _on_wfi(self, uc: Uc, address: int, size: int, data: object) -> None:
        self.wfi_at = address
        uc.emu_stop()

    def word(self, address: int) -> int:
        """A 32-bit little-endian word of memory."""
        return int.from_bytes(self.uc.mem_read(address, 4), "little")

    def set_word(self, address: int, value: int) -> None:
        """Write a 32-bit word (a register the hardware would set, or the clock)."""
        self.uc.mem_write(address, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def run(self) -> None:
        """Run the main loop until it next sleeps (WFI); AssertionError if it never does."""
        self.wfi_at = None
        self.uc.emu_start(self.pc | 1, 0xFFFFFFFF, count=PASS_LIMIT)
        assert self.wfi_at is not None, f"no WFI within {PASS_LIMIT} instructions"
        self.pc = self.wfi_at + 2  # resume after the WFI, as a wake-up would

    def run_to(self, symbol: str) -> None:
        """Run from where it stands to a function's first instruction (e.g. main, after the
        startup code has laid out RAM)."""
        self.uc.emu_start(self.pc | 1, self.sym[symbol], count=PASS_LIMIT)
        self.pc = self.uc.reg_read(UC_ARM_REG_PC)
        assert self.pc == self.sym[symbol], f"never reached {symbol}"

    def interrupt(self, handler: str) -> None:
        """Take one interrupt: the handler runs to its return, the main context is kept."""
        context = self.uc.context_save()
        sp = self.uc.reg_read(UC_ARM_REG_SP)
        self.uc.reg_write(UC_ARM_REG_SP, (sp - 64) & ~7)  # below the interrupted frame
        self.uc.reg_write(UC_ARM_REG_LR, RETURN | 1)
        self.uc.emu_start(self.sym[handler] | 1, RETURN, count=PASS_LIMIT)
        assert self.uc.reg_read(UC_ARM_REG_PC) == RETURN, f"{handler} did not return"
        self.uc.context_restore(context)

    @property
    def millis(self) -> int:
        """The firmware's millisecond counter."""
        return self.word(self.sym["millis"])

    def advance(self, ms: int, step: int = 10) -> None:
        """Let `ms` pass in steps (as SysTick would), running the main loop after each."""
        for _ in range(0, ms, step):
            self.set_word(self.sym["millis"], self.millis + step)
            self.run()
            for base in self.sent:  # the wire takes what the rings hold, as it always does
                self.drain(base)

    def receive(self, base: int, data: bytes) -> None:
        """Bytes arriving on a USART: RXNE and RDR for each, its interrupt taken."""
        handler = "usart1_irq" if base == USART1 else "usart2_irq"
        for byte in data:
            self.set_word(base + RDR, byte)
            self.set_word(base + ISR, RXNE)
            self.interrupt(handler)
        self.set_word(base + ISR, 0)

    def drain(self, base: int) -> None:
        """Send what a USART's transmit ring holds: TXE each time, as the wire drains it."""
        handler = "usart1_irq" if base == USART1 else "usart2_irq"
        while self.word(base + CR1) & TXEIE:
            self.set_word(base + ISR, TXE)
            self.interrupt(handler)
        self.set_word(base + ISR, 0)

    def transmit(self, base: int) -> bytes:
        """What a USART sent since last asked."""
        self.drain(base)
        out = bytes(self.sent[base])
        self.sent[base].clear()
        return out

    def stack_used(self) -> int:
        """Bytes of stack ever touched (high-water mark): from the top down to the lowest byte
        above .bss that lost the fill. An emulated interrupt takes 64 bytes more than a real
        exception frame (32), so this errs high."""
        bottom, top = self.sym["_bss_end"], self.sym["_stack_top"]
        ram = bytes(self.uc.mem_read(bottom, top - bottom))
        untouched = len(ram) - len(ram.lstrip(STACK_FILL))
        return top - bottom - untouched

    def flash_page(self, address: int, size: int) -> bytes:
        """Flash as the chip would read it."""
        return bytes(self.uc.mem_read(address, size))
