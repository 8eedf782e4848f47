"""The real STM32F030 image (board-arm.elf, built with -Werror) run in Unicorn's Cortex-M0
(tests/firmware/arm_emu.py): startup and peripheral set-up, boot banner, Modbus requests and
answers, a session with READ and RELAY, the 5 s failsafe, a dead meter opening a budget-held
relay, and CONFIG written to the flash page and read back after a reboot. Peripherals are
register models driven by the test, not the chip; time is the firmware's own counter."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadInputRegistersRequest, ReadInputRegistersResponse

from firmware_bridge import protocol

unicorn = pytest.importorskip("unicorn", reason="unicorn not installed (make test-deps)")
from .arm_emu import GPIOB, USART1, USART2, ArmBoard  # noqa: E402

ARM_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware" / "arm"
UID = bytes.fromhex("1f00350013504b5931383620")  # a 96-bit unique id, as an F030 has
FRAMER = FramerRTU(DecodePDU(False))
REGISTERS = [1262, 347, 4380, 0, 1234, 0, 0, 0]  # 12.62 V, 3.47 A, 438.0 W, 1234 Wh
BSRR, BRR = GPIOB + 0x18, GPIOB + 0x28


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The default build (consumer, 2 relays): ELF and flash image."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (make system-deps installs "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    build = tmp_path_factory.mktemp("arm")
    subprocess.run(["make", "-s", "-C", str(ARM_DIR), f"BUILD={build}"], check=True,
                   capture_output=True, text=True)
    return build / "board-arm.elf", (build / "board-arm.bin").read_bytes()


def fresh_id(uid: bytes) -> str:
    """The id an unconfigured board takes: "f0-" + FNV-1a of its unique id (config_flash.c)."""
    h = 0x811C9DC5
    for byte in uid:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"f0-{h:08x}"


class Host:
    """A bridge's side of USART1: frames in, replies and events out (protocol.py)."""

    def __init__(self, board: ArmBoard):
        self.board, self.session, self.next_id = board, "", 1
        self.events: list[protocol.Frame] = []

    def lines(self) -> list[bytes]:
        """Every line the board sent since last asked."""
        return [line + b"\n" for line in self.board.transmit(USART1).split(b"\n") if line]

    def request(self, verb: str, *args: object) -> protocol.Frame:
        """One request; its reply (events before it are kept in `events`)."""
        req_id, self.next_id = self.next_id, self.next_id + 1
        key = "" if verb == "HELLO" else self.session
        self.board.receive(USART1, protocol.encode(">", req_id, verb, *args, session=key))
        self.board.run()
        reply = None
        for line in self.lines():
            frame = protocol.decode(line, None if reply is None and verb == "HELLO"
                                    else self.session)
            if frame.kind == "<" and frame.req_id == req_id:
                reply = frame
                if verb == "HELLO":
                    self.session = protocol.parse_hello(frame.args[1:]).session
            else:
                self.events.append(frame)
        assert reply is not None, f"no reply to {verb}"
        return reply

    def collect(self) -> list[protocol.Frame]:
        """Events sent since last asked."""
        self.events += [protocol.decode(line, self.session) for line in self.lines()]
        found, self.events = self.events, []
        return found


def meter(board: ArmBoard, answer: Callable[[int], bytes | None]) -> None:
    """Serve every pending Modbus request on USART2 with answer(address) (None: stay silent)."""
    request = board.transmit(USART2)
    for i in range(0, len(request), 8):
        reply = answer(request[i])
        if reply is not None:
            board.receive(USART2, reply)


def pzem(address: int) -> bytes:
    """A PZEM-017's answer, as pymodbus frames it."""
    return FRAMER.buildFrame(ReadInputRegistersResponse(registers=REGISTERS, dev_id=address))


def boot(image: tuple[Path, bytes], flash: bytes | None = None) -> ArmBoard:
    """A board from reset to its first sleep."""
    board = ArmBoard(image[0], image[1], UID, flash)
    board.run()
    return board


def test_boot_sets_up_pins_clocks_and_says_banner(image: tuple[Path, bytes]) -> None:
    """Relay pins are driven low first, then the watchdog, USARTs and SysTick are set as
    RM0360 says; the banner names the UID-derived id; the first Modbus request goes out."""
    board = boot(image)
    writes = board.writes
    relay_first = [a for a, _ in writes[:9]]
    assert relay_first[0] == 0x40021014  # RCC_AHBENR: GPIO clocks
    assert [v for a, v in writes[1:9] if a == BRR] == [1 << 0, 1 << 1, 1 << 10, 1 << 11]
    moder = board.word(GPIOB)
    assert all((moder >> (2 * pin)) & 3 == 1 for pin in (0, 1, 10, 11))
    iwdg = [(a & 0xF, v) for a, v in writes if 0x40003000 <= a < 0x40003010]
    assert iwdg[:5] == [(0, 0xCCCC), (0, 0x5555), (4, 3), (8, 1250), (0, 0xAAAA)]
    assert board.word(USART1 + 0x0C) == 69 and board.word(USART2 + 0x0C) == 833
    assert board.word(USART2 + 0x04) == 2 << 12  # two stop bits
    assert board.word(USART2 + 0x08) & (1 << 14)  # DEM: the transceiver's DE
    assert board.word(0xE000E014) == 8000 - 1  # SysTick: 1 ms at 8 MHz
    banner = protocol.decode(board.transmit(USART1), None)
    assert (banner.kind, banner.verb, banner.args) == ("!", "BOOT", ("2", fresh_id(UID),
                                                                     "consumer", "2"))
    want = FRAMER.buildFrame(ReadInputRegistersRequest(address=0, count=8, dev_id=1))
    assert board.transmit(USART2) == want


def test_session_read_relay_and_failsafe(image: tuple[Path, bytes]) -> None:
    """HELLO, a READ with the meter's values, RELAY 0 1 sets PB0; after 5 s of silence the
    failsafe clears PB0 and says FAILSAFE, within one 10 ms step of 5000 ms."""
    board = boot(image)
    host = Host(board)
    meter(board, pzem)
    board.advance(20)
    hello = host.request("HELLO")
    assert protocol.parse_hello(hello.args[1:]).board_id == fresh_id(UID)
    reading = protocol.parse_reading(host.request("READ").args[1:])
    assert (reading.voltage_v, reading.current_a, reading.power_w, reading.wh_in) == (
        12.62, 3.47, 438.0, 1234.0)
    board.writes.clear()
    host.request("RELAY", 0, 1)
    assert (BSRR, 1) in board.writes
    sent_at, board.writes = board.millis, []
    while (BRR, 1) not in board.writes:
        meter(board, pzem)
        board.advance(10)
        assert board.millis - sent_at <= 6000, "failsafe never opened relay 0"
    assert 5000 <= board.millis - sent_at <= 5010
    assert "FAILSAFE" in [e.verb for e in host.collect()]


def test_dead_meter_opens_a_budget_held_relay(image: tuple[Path, bytes]) -> None:
    """With a budget on relay 0, a meter that stops answering opens it (METER FAULT) after
    the request and its retry time out, and RELAY 0 1 is refused until the meter is back."""
    board = boot(image)
    host = Host(board)
    meter(board, pzem)
    board.advance(20)
    host.request("HELLO")
    host.request("BUDGET", 0, "500.000")
    host.request("RELAY", 0, 1)
    board.writes.clear()
    while (BRR, 1) not in board.writes:
        meter(board, lambda address: None)
        board.advance(10)
        assert board.millis < 3000, "relay 0 stayed closed without a meter"
    assert "METER" in [e.verb for e in host.collect()]
    refused = host.request("RELAY", 0, 1)
    assert (refused.verb, refused.args[-1]) == ("ERR", "no-meter-for-budget")
    for _ in range(60):
        meter(board, pzem)
        board.advance(10)
    assert host.request("RELAY", 0, 1).verb == "OK"


def test_config_is_kept_in_flash_across_a_reboot(image: tuple[Path, bytes]) -> None:
    """CONFIG writes id and address to the last flash page; after a reset the banner says
    the new id and Modbus requests go to the new address."""
    board = boot(image)
    host = Host(board)
    host.request("HELLO")
    assert host.request("CONFIG", "site1-carol", 17).args == ("CONFIG", "site1-carol", "17")
    page = board.flash_page(0x0800FC00, 1024)
    assert b"site1-carol" in page and page[40:] == b"\xff" * (1024 - 40)
    again = boot(image, board.flash_page(0x08000000, 64 * 1024))
    banner = protocol.decode(again.transmit(USART1), None)
    assert banner.args[1] == "site1-carol"
    assert again.transmit(USART2)[0] == 17


def test_stack_stays_within_what_the_linker_keeps(image: tuple[Path, bytes]) -> None:
    """Through boot, a session, a reading, relays, a budget, CONFIG (flash writes) and the
    failsafe, the stack never reaches 1 KB (the linker script's minimum); printed."""
    board = boot(image)
    host = Host(board)
    meter(board, pzem)
    board.advance(20)
    host.request("HELLO")
    host.request("READ")
    host.request("BUDGET", 1, "2.500")
    host.request("RELAY", 1, 1)
    host.request("CONFIG", "x" * 32, 247)
    board.advance(5100, step=50)
    used = board.stack_used()
    room = 0x20000000 + 8192 - board.sym["_bss_end"]
    print(f"arm stack high-water (emulated): {used} B of the {room} B above .bss")
    assert 0 < used < 1024
