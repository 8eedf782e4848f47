"""The STM32 HAL's hal_meter_poll (arm/meter.c with arm/pzem_rtu.c), built for the host with a
stand-in USART2 and clock (arm_meter_shim.c): its request pacing, the answer becoming METER_OK
with the right units, a lost answer asked again once, a dead meter reported as METER_FAULT
once per failed retry. The clock is the shim's variable, never the wall clock."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadInputRegistersRequest, ReadInputRegistersResponse

HERE = Path(__file__).resolve().parent
ARM_DIR = HERE.parents[1] / "firmware_bridge" / "firmware" / "arm"
METER_OK, METER_PENDING, METER_FAULT = range(3)
METER_ASKED = 0x80  # or'ed in by the call that sent a request (hal.h)
PERIOD_MS, TIMEOUT_MS = 500, 200
FRAMER = FramerRTU(DecodePDU(False))
REGISTERS = [1262, 347, 0x5678, 0x0001, 0xBEEF, 0x0002, 0, 0]


class Meter(ctypes.Structure):
    """struct meter (hal.h)."""

    _fields_ = [("mv", ctypes.c_int32), ("ma", ctypes.c_int32), ("dw", ctypes.c_int32),
                ("mwh_in", ctypes.c_uint64), ("mwh_out", ctypes.c_uint64),
                ("soc_milli", ctypes.c_int16), ("pv_dw", ctypes.c_int32)]


def build(out: Path, kind: str) -> ctypes.CDLL:
    """meter.c + pzem_rtu.c + the shim as one shared library, -Werror with the WARN flags."""
    subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow",
         "-Wconversion", "-O2", "-shared", "-fPIC", f"-DARM_KIND={kind}", f"-I{ARM_DIR}",
         "-o", str(out), str(ARM_DIR / "meter.c"), str(ARM_DIR.parent / "pzem_rtu.c"),
         str(HERE / "arm_meter_shim.c")],
        check=True, capture_output=True, text=True,
    )
    return ctypes.CDLL(str(out))


class Hal:
    """One loaded copy of the meter HAL (a fresh library per test: its statics start at 0)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        lib.hal_meter_poll.restype = ctypes.c_uint8
        self.now = ctypes.c_uint32.in_dll(lib, "shim_now")
        self.tx_len = ctypes.c_size_t.in_dll(lib, "shim_tx_len")
        self.tx = (ctypes.c_uint8 * 256).in_dll(lib, "shim_tx")

    def poll(self, at: int) -> tuple[int, Meter]:
        """hal_meter_poll at `at` ms."""
        self.now.value = at
        m = Meter()
        return self.lib.hal_meter_poll(ctypes.byref(m)), m

    def sent(self) -> list[bytes]:
        """The 8-byte requests sent so far; forgets them."""
        data = bytes(self.tx[: self.tx_len.value])
        self.tx_len.value = 0
        return [data[i:i + 8] for i in range(0, len(data), 8)]

    def answer(self, registers: list[int] = REGISTERS, addr: int = 1) -> None:
        """The meter's answer arrives on USART2."""
        frame = FRAMER.buildFrame(ReadInputRegistersResponse(registers=registers, dev_id=addr))
        self.lib.shim_rx((ctypes.c_uint8 * len(frame))(*frame), ctypes.c_size_t(len(frame)))


def request(addr: int = 1) -> bytes:
    """What a read of the PZEM's 8 input registers at `addr` looks like on the wire."""
    return FRAMER.buildFrame(ReadInputRegistersRequest(address=0, count=8, dev_id=addr))


@pytest.fixture
def hal(tmp_path: Path) -> Hal:
    """A consumer board's meter HAL."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: install gcc (Debian: build-essential)")
    return Hal(build(tmp_path / "meter.so", "BOARD_CONSUMER"))


def test_answer_becomes_one_reading_and_requests_are_paced(hal: Hal) -> None:
    """A request at the first poll; the answer is METER_OK once, in hal.h's units; the next
    request goes out a period after the last; the calls that send one say so (METER_ASKED)."""
    assert hal.poll(1000)[0] == METER_PENDING | METER_ASKED
    assert hal.sent() == [request()]
    hal.answer()
    state, m = hal.poll(1030)
    assert state == METER_OK
    assert (m.mv, m.ma, m.dw) == (12620, 3470, 0x15678)
    assert (m.mwh_in, m.mwh_out, m.soc_milli, m.pv_dw) == (0x2BEEF * 1000, 0, -1, -1)
    assert hal.poll(1040)[0] == METER_PENDING  # reported once
    assert hal.poll(1000 + PERIOD_MS - 1)[0] == METER_PENDING and hal.sent() == []
    assert hal.poll(1000 + PERIOD_MS)[0] == METER_PENDING | METER_ASKED
    assert hal.sent() == [request()]


def test_lost_answer_is_asked_again_before_any_fault(hal: Hal) -> None:
    """No answer within the timeout: the request goes out again at once, and its answer is
    a reading, with no METER_FAULT on the way."""
    hal.poll(0)
    hal.sent()
    assert hal.poll(TIMEOUT_MS)[0] == METER_PENDING | METER_ASKED  # the retry samples anew
    assert hal.sent() == [request()]
    hal.answer()
    assert hal.poll(TIMEOUT_MS + 30)[0] == METER_OK


def test_dead_meter_faults_once_per_failed_retry(hal: Hal) -> None:
    """Silence: METER_FAULT after the request and its retry time out (400 ms), once; then
    requests go on at the period, each failing pair another fault; an answer recovers."""
    results = [hal.poll(t)[0] for t in range(0, 2 * PERIOD_MS, 10)]
    assert results.count(METER_FAULT) == 2
    assert results.index(METER_FAULT) == 2 * TIMEOUT_MS // 10
    assert len(hal.sent()) == 4  # requests at 0 and 500 ms, their retries at 200 and 700
    hal.poll(3 * PERIOD_MS)
    hal.answer()
    assert hal.poll(3 * PERIOD_MS + 30)[0] == METER_OK


def test_late_answer_is_not_the_next_requests(hal: Hal) -> None:
    """An answer arriving after its request failed is dropped when the next one starts; a
    changed meter address (CONFIG) is used from the next request on."""
    for t in range(0, 2 * TIMEOUT_MS + 1, 10):
        hal.poll(t)
    hal.answer(registers=[9] * 8)  # the old request's answer, too late
    hal.lib.shim_set_meter_addr(ctypes.c_uint8(17))
    hal.sent()
    assert hal.poll(PERIOD_MS)[0] == METER_PENDING | METER_ASKED
    assert hal.sent() == [request(17)]
    hal.answer(addr=17)
    state, m = hal.poll(PERIOD_MS + 30)
    assert state == METER_OK and m.mv == REGISTERS[0] * 10


def test_producer_counts_energy_out_with_negative_power(tmp_path: Path) -> None:
    """On a producer board the PZEM's counter is WHOUT and net power (in minus out) < 0."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: install gcc (Debian: build-essential)")
    hal = Hal(build(tmp_path / "meter.so", "BOARD_PRODUCER"))
    hal.poll(0)
    hal.answer()
    state, m = hal.poll(30)
    assert state == METER_OK
    assert (m.ma, m.dw, m.mwh_in, m.mwh_out) == (-3470, -0x15678, 0, 0x2BEEF * 1000)
