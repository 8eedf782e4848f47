"""PZEM-017 driver: register decoding, and reads from pymodbus's RTU server on socat ptys."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.pzem import (
    Pzem017,
    PzemError,
    PzemTimeout,
    ResetEnergy,
    decode_input_registers,
)
from tests.common import wait_for

ADDRESS = 1
TIMEOUT_S = 0.3  # pty round trips take milliseconds; keeps the timeout tests short


def registers(volts: float, amps: float, watts: float, wh: int, hv: bool = False,
              lv: bool = False) -> list[int]:
    """The 8 input registers a PZEM-017 would send for these values (32-bit: low word first)."""
    power = round(watts * 10)
    return [round(volts * 100), round(amps * 100), power & 0xFFFF, power >> 16,
            wh & 0xFFFF, wh >> 16, 0xFFFF if hv else 0, 0xFFFF if lv else 0]


# --- pure decoding -------------------------------------------------------------------------


def test_energy_arrives_low_word_first() -> None:
    decoded = decode_input_registers([0, 0, 0, 0, 0x86A0, 0x0001, 0, 0])
    assert decoded["energy_wh"] == 100_000.0  # 0x0001_86A0


def test_power_arrives_low_word_first() -> None:
    assert decode_input_registers([0, 0, 0x0000, 0x0001, 0, 0, 0, 0])["power_w"] == 6553.6
    assert decode_input_registers([0, 0, 0x0001, 0x0000, 0, 0, 0, 0])["power_w"] == 0.1


def test_scaling_to_volts_amps_watts() -> None:
    decoded = decode_input_registers([1234, 567, 700, 0, 0, 0, 0, 0])
    assert decoded == {
        "voltage_v": 12.34, "current_a": 5.67, "power_w": 70.0, "energy_wh": 0.0,
        "high_voltage_alarm": False, "low_voltage_alarm": False,
    }


@pytest.mark.parametrize(("hv", "lv"), [(0xFFFF, 0), (0, 0xFFFF), (0xFFFF, 0xFFFF)])
def test_alarm_flags(hv: int, lv: int) -> None:
    decoded = decode_input_registers([0, 0, 0, 0, 0, 0, hv, lv])
    assert (decoded["high_voltage_alarm"], decoded["low_voltage_alarm"]) == (hv != 0, lv != 0)


def test_maximum_values() -> None:
    decoded = decode_input_registers([0xFFFF] * 8)
    assert decoded["voltage_v"] == 655.35
    assert decoded["current_a"] == 655.35
    assert decoded["power_w"] == 429_496_729.5
    assert decoded["energy_wh"] == 4_294_967_295.0
    assert decoded["high_voltage_alarm"] and decoded["low_voltage_alarm"]


@pytest.mark.parametrize("bad", [[0] * 7, [0] * 9, [0, 0, 0, 0, 0, 0, 0, 0x10000], [-1] + [0] * 7])
def test_malformed_registers_raise_pzem_error(bad: list[int]) -> None:
    with pytest.raises(PzemError):
        decode_input_registers(bad)


def test_registers_helper_matches_the_manual_example() -> None:
    assert registers(12.34, 5.67, 70.0, 100_000) == [1234, 567, 700, 0, 0x86A0, 0x0001, 0, 0]


@pytest.mark.parametrize("address", [0, 0xF9, 256, True])
def test_invalid_address_is_rejected(address: int) -> None:
    with pytest.raises(ValueError, match="address"):
        Pzem017("/dev/null", address=address)


def test_missing_port_gives_pzem_error(tmp_path: Path) -> None:
    with pytest.raises(PzemError, match=r"cannot open serial port .*nowhere") as info:
        Pzem017(str(tmp_path / "nowhere"), timeout=TIMEOUT_S).read()
    assert isinstance(info.value, BridgeError)


# --- against pymodbus's RTU server on a pty pair ----------------------------------------------


class FakeMeter:
    """The PZEM-017 register map a test sets; the server copies it in before every request."""

    def __init__(self) -> None:
        """A meter at 0 V with the 100 A shunt and no alarms."""
        self.input = [0] * 8
        self.holding = [2000, 700, ADDRESS, 0x0000]  # HV 20 V, LV 7 V, address, 100 A
        self.fail = False  # answer every request with Modbus exception 4

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     current: list[int], set_values: list[int] | list[bool] | None
                     ) -> ExcCodes | None:
        """SimDevice hook: refresh the server's registers from this object."""
        if self.fail:
            return ExcCodes.DEVICE_FAILURE
        source = self.input if function_code == 4 else self.holding
        current[:len(source)] = source
        return None


class MeterServer:
    """pymodbus's RTU serial server for one FakeMeter, on its own event loop in a thread."""

    def __init__(self, port: str, meter: FakeMeter) -> None:
        """Serve `meter` at ADDRESS on `port` (8N2, 9600 baud, like the real meter)."""
        self.port = port
        self.meter = meter
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: ModbusSerialServer | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        """Build the server on this loop (pymodbus requires it), listen, wait for shutdown."""
        bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        device = SimDevice(
            id=ADDRESS,
            simdata=(bits, list(bits), [SimData(0, values=[0] * 4, datatype=DataType.REGISTERS)],
                     [SimData(0, values=[0] * 8, datatype=DataType.REGISTERS)]),
            action=self.meter.action,
        )
        meter = self.meter

        class ServerResetEnergy(ResetEnergy):
            """Function 0x42 as the meter handles it: zero the energy counter, echo the request."""

            async def datastore_update(self, context: object, device_id: int) -> ModbusPDU:
                """Zero registers 0x0004..0x0005 of this server's meter."""
                meter.input[4:6] = [0, 0]
                return ResetEnergy(dev_id=device_id)

        self.loop = asyncio.get_running_loop()
        self.server = ModbusSerialServer(
            device, port=self.port, baudrate=9600, stopbits=2, custom_pdu=[ServerResetEnergy],
            trace_pdu=self._only_our_address,
        )
        await self.server.serve_forever(background=True)
        self.ready.set()
        await self.server.serving

    def _only_our_address(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """Drop requests for other addresses: a real bus stays silent (pymodbus would answer)."""
        return None if not sending and pdu.dev_id != ADDRESS else pdu

    def start(self) -> None:
        """Start serving; fail the test if the server does not come up."""
        self.thread.start()
        assert self.ready.wait(5), "pymodbus serial server did not start"

    def stop(self) -> None:
        """Shut the server down and join its thread."""
        if self.loop and self.server and self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.thread.join(5)
        assert not self.thread.is_alive(), "pymodbus serial server thread did not stop"


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(meter, host): two linked ptys made by socat, killed at teardown."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed (Debian: apt-get install socat; `make test` does it)")
    meter, host = tmp_path / "meter", tmp_path / "host"
    process = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={meter}", f"pty,raw,echo=0,link={host}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: meter.exists() and host.exists(), 5, "socat to create both ptys")
        yield str(meter), str(host)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def meter() -> FakeMeter:
    """The register map the server serves."""
    return FakeMeter()


@pytest.fixture
def server(ptys: tuple[str, str], meter: FakeMeter) -> Iterator[MeterServer]:
    """A started pymodbus RTU server on the meter end of the pty pair."""
    running = MeterServer(ptys[0], meter)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def pzem(ptys: tuple[str, str], server: MeterServer) -> Iterator[Pzem017]:
    """A Pzem017 on the host end, at the meter's address."""
    with Pzem017(ptys[1], address=ADDRESS, timeout=TIMEOUT_S, retries=0) as client:
        yield client


def test_read_scales_what_the_meter_sends(pzem: Pzem017, meter: FakeMeter) -> None:
    meter.input = registers(12.34, 5.67, 70.0, 100_000)
    assert pzem.read() == Reading(voltage_v=12.34, current_a=5.67, power_w=70.0,
                                  wh_in=100_000.0, wh_out=0.0, relays=())
    assert pzem.alarms() == (False, False)


def test_port_is_set_up_like_the_meter(pzem: Pzem017) -> None:
    # A pty ignores line settings, so check them on the pyserial port pymodbus opened.
    port = pzem._client.socket
    assert port is not None
    assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (9600, 8, "N", 2)


def test_changed_registers_are_read_again(pzem: Pzem017, meter: FakeMeter) -> None:
    meter.input = registers(12.34, 5.67, 70.0, 100_000)
    assert pzem.read().wh_in == 100_000.0
    meter.input = registers(48.5, 120.25, 5832.1, 0x0123_4567, hv=True)
    reading = pzem.read()
    assert (reading.voltage_v, reading.current_a, reading.power_w, reading.wh_in) == (
        48.5, 120.25, 5832.1, float(0x0123_4567))
    assert reading.relays == () and reading.soc is None and reading.pv_w is None
    assert pzem.alarms() == (True, False)
    meter.input = registers(6.0, 0.0, 0.0, 0, lv=True)
    assert pzem.alarms() == (False, True)


@pytest.mark.parametrize(("code", "amps"), [(0, 100), (1, 50), (2, 200), (3, 300)])
def test_current_range(pzem: Pzem017, meter: FakeMeter, code: int, amps: int) -> None:
    meter.holding[3] = code
    assert pzem.current_range() == amps


def test_unknown_current_range_code_is_an_error(pzem: Pzem017, meter: FakeMeter) -> None:
    meter.holding[3] = 7
    with pytest.raises(PzemError, match="unknown current range code 0x0007"):
        pzem.current_range()


def test_reset_energy_zeroes_the_counter(pzem: Pzem017, meter: FakeMeter) -> None:
    meter.input = registers(12.0, 1.0, 12.0, 100_000)
    pzem.reset_energy()
    assert pzem.read().wh_in == 0.0
    assert pzem.read().voltage_v == 12.0


def test_modbus_exception_names_port_address_and_code(pzem: Pzem017, meter: FakeMeter) -> None:
    meter.fail = True
    with pytest.raises(PzemError, match="exception 4 .device failure.") as info:
        pzem.read()
    assert not isinstance(info.value, PzemTimeout)
    assert f"at {pzem.port} address 1" in str(info.value)
    meter.fail = False
    pzem.read()  # the same client recovers


def test_wrong_address_times_out(ptys: tuple[str, str], server: MeterServer) -> None:
    with Pzem017(ptys[1], address=7, timeout=TIMEOUT_S, retries=0) as wrong:
        with pytest.raises(PzemTimeout, match=rf"PZEM-017 at {ptys[1]} address 7: no answer"):
            wrong.read()


def test_stopped_server_times_out_and_the_client_recovers(
    pzem: Pzem017, server: MeterServer, meter: FakeMeter, ptys: tuple[str, str]
) -> None:
    meter.input = registers(12.34, 5.67, 70.0, 100_000)
    assert pzem.read().voltage_v == 12.34
    server.stop()
    for _ in range(5):  # pymodbus words its error differently after retries + 3 misses
        with pytest.raises(PzemTimeout, match="no answer") as info:
            pzem.read()
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, BridgeError)
    restarted = MeterServer(ptys[0], meter)
    restarted.start()
    try:
        assert pzem.read().voltage_v == 12.34
    finally:
        restarted.stop()


def test_a_pzem_uri_is_a_bridge_board_without_relays(ptys: tuple[str, str], server: MeterServer,
                                                     meter: FakeMeter) -> None:
    meter.input = registers(12.5, 2.0, 25.0, 1_500)
    bridge = Bridge(heartbeat_s=0.1)
    try:
        info = bridge.attach(f"pzem://{ptys[1]}?unit={ADDRESS}&id=pv-bob&kind=producer"
                             f"&counts=out&timeout={TIMEOUT_S}")
        assert (info.board_id, info.kind, info.relay_count) == ("pv-bob", "producer", 0)
        first = bridge.reading("pv-bob")
        assert (first.wh_in, first.wh_out, first.relays) == (0.0, 1_500.0, ())
        # Polled on every heartbeat: a meter never speaks unasked.
        meter.input = registers(12.5, 2.0, 25.0, 1_510)
        wait_for(lambda: bridge.reading("pv-bob").wh_out == 1_510.0, 5, "the next poll")
        with pytest.raises(BridgeError, match="PZEM-017 meter: it has no relays"):
            bridge.set_relay("pv-bob", True)
        assert bridge.online("pv-bob")
    finally:
        bridge.close()
