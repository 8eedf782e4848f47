"""The Modbus RTU master both boards use (pzem_rtu.c, in the core), built for the host and driven
through ctypes: its requests and CRCs against pymodbus's RTU framer, its decoding against
firmware_bridge.pzem, and garbled, cut-off, late and foreign answers. Time is the caller's
millisecond argument, never the wall clock."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import ReadInputRegistersRequest, ReadInputRegistersResponse

from firmware_bridge.pzem import decode_input_registers

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware"
IDLE, WAIT, DONE, FAILED = range(4)
ERR_NONE, ERR_TIMEOUT, ERR_CRC, ERR_FRAME, ERR_EXCEPTION = range(5)
TIMEOUT_MS = 200
FRAMER = FramerRTU(DecodePDU(False))


class Rtu(ctypes.Structure):
    """struct pzem_rtu (pzem_rtu.h), natural alignment as on both ARM and x86-64."""

    _fields_ = [("state", ctypes.c_uint8), ("error", ctypes.c_uint8), ("addr", ctypes.c_uint8),
                ("len", ctypes.c_uint8), ("buf", ctypes.c_uint8 * 21), ("sent_ms", ctypes.c_uint32)]


class Values(ctypes.Structure):
    """struct pzem_values (pzem_rtu.h)."""

    _fields_ = [("centivolts", ctypes.c_uint16), ("centiamps", ctypes.c_uint16),
                ("deciwatts", ctypes.c_uint32), ("wh", ctypes.c_uint32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """pzem_rtu.c as a shared library, with the firmware's -Werror and WARN flags."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: install gcc (Debian: build-essential)")
    out = tmp_path_factory.mktemp("pzem_rtu") / "libpzem_rtu.so"
    subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow",
         "-Wconversion", "-O2", "-shared", "-fPIC", "-o", str(out),
         str(FIRMWARE_DIR / "pzem_rtu.c")],
        check=True, capture_output=True, text=True,
    )
    so = ctypes.CDLL(str(out))
    so.pzem_crc16.restype = ctypes.c_uint16
    so.pzem_check.restype = ctypes.c_uint8
    return so


def begin(lib: ctypes.CDLL, rtu: Rtu, addr: int, now: int) -> bytes:
    """Start a request; the bytes the master would send."""
    out = (ctypes.c_uint8 * 8)()
    lib.pzem_begin(ctypes.byref(rtu), ctypes.c_uint8(addr), ctypes.c_uint32(now), out)
    return bytes(out)


def feed(lib: ctypes.CDLL, rtu: Rtu, data: bytes) -> None:
    """Bytes as USART2 would deliver them, one at a time."""
    for byte in data:
        lib.pzem_feed(ctypes.byref(rtu), ctypes.c_uint8(byte))


def check(lib: ctypes.CDLL, rtu: Rtu, now: int) -> tuple[int, Values]:
    """The request's state at `now` and the values it decoded (meaningful on DONE)."""
    values = Values()
    state = lib.pzem_check(ctypes.byref(rtu), ctypes.c_uint32(now), ctypes.byref(values))
    return state, values


def reply(registers: list[int], addr: int = 1) -> bytes:
    """The PZEM-017's answer, as pymodbus frames it."""
    return FRAMER.buildFrame(ReadInputRegistersResponse(registers=registers, dev_id=addr))


REGISTERS = [1262, 347, 0x5678, 0x0001, 0xBEEF, 0x0002, 0, 0xFFFF]  # P, Wh above 16 bits


@pytest.mark.parametrize("addr", [1, 0x37, 0xF7, 0xF8])
def test_request_is_pymodbus_read_input_registers(lib: ctypes.CDLL, addr: int) -> None:
    """The 8-byte request equals pymodbus's function 4 frame for registers 0..7 (CRC too)."""
    want = FRAMER.buildFrame(ReadInputRegistersRequest(address=0, count=8, dev_id=addr))
    assert begin(lib, Rtu(), addr, 0) == want


def test_crc_is_modbus_crc16(lib: ctypes.CDLL) -> None:
    """pzem_crc16 over every reply body is the CRC pymodbus appends (low byte first)."""
    for regs in ([0] * 8, [0xFFFF] * 8, REGISTERS, list(range(8))):
        frame = reply(regs)
        body = (ctypes.c_uint8 * (len(frame) - 2))(*frame[:-2])
        crc = lib.pzem_crc16(body, ctypes.c_size_t(len(frame) - 2))
        assert crc.to_bytes(2, "little") == frame[-2:]


def test_reply_decodes_as_the_python_driver_does(lib: ctypes.CDLL) -> None:
    """Noise before the answer is skipped; V, I, P and Wh match decode_input_registers."""
    rtu = Rtu()
    begin(lib, rtu, 1, 1000)
    feed(lib, rtu, b"\x00\xff\x55" + reply(REGISTERS))
    state, v = check(lib, rtu, 1010)
    assert state == DONE
    want = decode_input_registers(REGISTERS)
    assert v.centivolts / 100 == want["voltage_v"]
    assert v.centiamps / 100 == want["current_a"]
    assert v.deciwatts / 10 == want["power_w"]
    assert float(v.wh) == want["energy_wh"]
    feed(lib, rtu, reply([0] * 8))  # a stray second answer changes nothing
    assert check(lib, rtu, 1020)[1].wh == v.wh


def test_every_flipped_bit_fails(lib: ctypes.CDLL) -> None:
    """One flipped bit anywhere in an answer never gives DONE: CRC or frame error, or (in the
    address byte) the answer is not ours and the request times out."""
    good = reply(REGISTERS)
    for i in range(len(good)):
        for bit in (0x01, 0x80):
            rtu = Rtu()
            begin(lib, rtu, 1, 0)
            bad = bytearray(good)
            bad[i] ^= bit
            feed(lib, rtu, bytes(bad))
            state, _ = check(lib, rtu, TIMEOUT_MS)
            assert state == FAILED, (i, bit)
            assert rtu.error in (ERR_CRC, ERR_FRAME, ERR_TIMEOUT), (i, bit, rtu.error)


def test_exception_answer_fails(lib: ctypes.CDLL) -> None:
    """A Modbus exception (0x84, device failure) is a failed request, at once."""
    rtu = Rtu()
    begin(lib, rtu, 1, 0)
    feed(lib, rtu, FRAMER.buildFrame(ExceptionResponse(4, 4, device_id=1)))
    assert check(lib, rtu, 1)[0] == FAILED
    assert rtu.error == ERR_EXCEPTION


def test_other_meters_answer_is_ignored(lib: ctypes.CDLL) -> None:
    """An answer from address 2 is not meter 1's: it waits, then times out."""
    rtu = Rtu()
    begin(lib, rtu, 1, 0)
    feed(lib, rtu, reply(REGISTERS, addr=2))
    assert check(lib, rtu, TIMEOUT_MS - 1)[0] == WAIT
    assert check(lib, rtu, TIMEOUT_MS)[0] == FAILED
    assert rtu.error == ERR_TIMEOUT


@pytest.mark.parametrize("start", [0, 0xFFFFFFFF - 50])  # and across the millis wrap
def test_silence_and_cut_off_answers_time_out(lib: ctypes.CDLL, start: int) -> None:
    """No answer: WAIT until 200 ms, then a timeout; half an answer: a frame error."""
    rtu = Rtu()
    begin(lib, rtu, 1, start)
    assert check(lib, rtu, (start + TIMEOUT_MS - 1) & 0xFFFFFFFF)[0] == WAIT
    assert check(lib, rtu, (start + TIMEOUT_MS) & 0xFFFFFFFF)[0] == FAILED
    assert rtu.error == ERR_TIMEOUT
    begin(lib, rtu, 1, start)
    feed(lib, rtu, reply(REGISTERS)[:10])
    assert check(lib, rtu, (start + TIMEOUT_MS) & 0xFFFFFFFF)[0] == FAILED
    assert rtu.error == ERR_FRAME


def test_new_request_forgets_a_partial_answer(lib: ctypes.CDLL) -> None:
    """The first half of a late answer to an old request does not join the next answer."""
    rtu = Rtu()
    begin(lib, rtu, 1, 0)
    feed(lib, rtu, reply([9] * 8)[:7])
    begin(lib, rtu, 1, 500)
    feed(lib, rtu, reply(REGISTERS))
    state, v = check(lib, rtu, 510)
    assert state == DONE and v.centivolts == REGISTERS[0]
