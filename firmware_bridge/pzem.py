"""PZEM-017 DC energy meter over Modbus RTU (docs/PZEM017.md), read with pymodbus."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading

__all__ = [
    "CURRENT_RANGES", "GENERAL_ADDRESS", "INPUT_REGISTERS", "Pzem017", "PzemError", "PzemTimeout",
    "ResetEnergy", "decode_input_registers",
]

INPUT_REGISTERS = 8  # 0x0000..0x0007: V, I, P low/high, Wh low/high, HV alarm, LV alarm
GENERAL_ADDRESS = 0xF8  # answered by any meter; only for a bus with a single meter
REG_CURRENT_RANGE = 0x0003  # holding register: shunt range code
CURRENT_RANGES = {0x0000: 100, 0x0001: 50, 0x0002: 200, 0x0003: 300}  # code -> amps
RESET_ENERGY = 0x42  # PZEM custom function code: zero the energy counter
_EXCEPTIONS = {
    1: "illegal function", 2: "illegal address", 3: "illegal value", 4: "device failure",
}


class PzemError(BridgeError):
    """A PZEM-017 could not be read: Modbus exception, malformed reply or serial failure."""


class PzemTimeout(PzemError, TimeoutError):
    """A PZEM-017 did not answer in time."""


class ResetEnergy(ModbusPDU):
    """PZEM custom function 0x42: request and reply are address, 0x42, CRC and nothing else."""

    function_code = RESET_ENERGY
    rtu_frame_size = 4  # address + function code + 2 CRC bytes


def _u32(low: int, high: int) -> int:
    """A 32-bit value sent low word first, as the PZEM does for power and energy."""
    return (high << 16) | low


def decode_input_registers(registers: Sequence[int]) -> dict:
    """The 8 input registers scaled to units: V, A, W, Wh and the two voltage alarm flags."""
    if len(registers) != INPUT_REGISTERS:
        raise PzemError(f"expected {INPUT_REGISTERS} input registers, got {len(registers)}")
    if any(not isinstance(r, int) or not 0 <= r <= 0xFFFF for r in registers):
        raise PzemError(f"input registers {list(registers)} are not all 16-bit values")
    volts, amps, p_low, p_high, wh_low, wh_high, hv_alarm, lv_alarm = registers
    return {
        "voltage_v": volts / 100,
        "current_a": amps / 100,
        "power_w": _u32(p_low, p_high) / 10,
        "energy_wh": float(_u32(wh_low, wh_high)),
        # The manual says 0xFFFF = alarm, 0 = none; any other non-zero word counts as alarm.
        "high_voltage_alarm": hv_alarm != 0,
        "low_voltage_alarm": lv_alarm != 0,
    }


class Pzem017:
    """One PZEM-017 on an RS-485 serial port: `read()` gives a Reading; a context manager."""

    def __init__(
        self,
        port: str,
        *,
        address: int = 1,
        baudrate: int = 9600,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> None:
        """Prepare the client; the port opens on first use or on `with`."""
        if isinstance(address, bool) or not (1 <= address <= 0xF7 or address == GENERAL_ADDRESS):
            raise ValueError(f"PZEM address {address!r} must be 1..247 or 0xF8 (general)")
        self.port = port
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self._client = ModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            bytesize=8,
            parity="N",
            stopbits=2,
            timeout=timeout,
            retries=retries,
            name=f"pzem017 {port}",
        )
        self._client.register(ResetEnergy)

    def __repr__(self) -> str:
        """Port and address, as error messages name them."""
        return f"Pzem017({self.port!r}, address={self.address})"

    @property
    def _where(self) -> str:
        """The meter named in error messages."""
        return f"PZEM-017 at {self.port} address {self.address}"

    def open(self) -> None:
        """Open the serial port; PzemError if it cannot be opened."""
        if not self._client.connect():
            raise PzemError(
                f"{self._where}: cannot open serial port {self.port} "
                "(is the RS-485 adapter plugged in, and may this user open it?)"
            )

    def close(self) -> None:
        """Close the serial port; reading again reopens it."""
        self._client.close()

    def __enter__(self) -> Pzem017:
        """Open the port."""
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the port."""
        self.close()

    def _call(self, what: str, request: Callable[[], ModbusPDU]) -> ModbusPDU:
        """Run one Modbus request, translating every failure into PzemError or PzemTimeout."""
        self.open()
        try:
            response = request()
        except ModbusIOException as err:
            # pymodbus raises ModbusIOException for "no response received" and for replies
            # it could not decode; only the former is a timeout.
            if "no response" in str(err).lower():
                tries = self.retries + 1
                raise PzemTimeout(
                    f"{self._where}: no answer to {what} after {tries} tries of "
                    f"{self.timeout:g} s (check wiring, A/B polarity, address, baud rate and 8N2)"
                ) from err
            raise PzemError(f"{self._where}: malformed reply to {what}: {err}") from err
        except (ModbusException, OSError, ValueError) as err:
            raise PzemError(f"{self._where}: {what} failed: {err}") from err
        if response.isError():
            code = getattr(response, "exception_code", 0)
            name = _EXCEPTIONS.get(code, "unknown")
            raise PzemError(
                f"{self._where}: meter refused {what}: Modbus exception {code} ({name})"
            )
        return response

    def _registers(self, what: str, response: ModbusPDU, count: int) -> list[int]:
        """The registers of a read reply; PzemError unless there are exactly `count`."""
        registers = list(response.registers)
        if len(registers) != count:
            raise PzemError(
                f"{self._where}: malformed reply to {what}: {len(registers)} registers, "
                f"expected {count}"
            )
        return registers

    def read_input_registers(self) -> dict:
        """All 8 input registers, decoded to units by decode_input_registers."""
        what = "read input registers 0x0000..0x0007"
        response = self._call(
            what,
            lambda: self._client.read_input_registers(
                0, count=INPUT_REGISTERS, device_id=self.address
            ),
        )
        return decode_input_registers(self._registers(what, response, INPUT_REGISTERS))

    def read(self) -> Reading:
        """One measurement as a Reading: no relays, no export counter, no battery or PV."""
        values = self.read_input_registers()
        return Reading(
            voltage_v=values["voltage_v"],
            current_a=values["current_a"],
            power_w=values["power_w"],
            wh_in=values["energy_wh"],
            wh_out=0.0,  # the PZEM-017 counts one direction only
            relays=(),
        )

    def alarms(self) -> tuple[bool, bool]:
        """(high-voltage alarm, low-voltage alarm) as the meter reports them now."""
        values = self.read_input_registers()
        return values["high_voltage_alarm"], values["low_voltage_alarm"]

    def current_range(self) -> int:
        """The shunt range the meter is set to, in amps (50, 100, 200 or 300)."""
        what = "read holding register 0x0003 (current range)"
        response = self._call(
            what,
            lambda: self._client.read_holding_registers(
                REG_CURRENT_RANGE, count=1, device_id=self.address
            ),
        )
        (code,) = self._registers(what, response, 1)
        if code not in CURRENT_RANGES:
            raise PzemError(f"{self._where}: unknown current range code {code:#06x}")
        return CURRENT_RANGES[code]

    def reset_energy(self) -> None:
        """Zero the meter's energy counter (custom function 0x42)."""
        response = self._call(
            "reset energy (function 0x42)",
            lambda: self._client.execute(False, ResetEnergy(dev_id=self.address)),
        )
        if response.function_code != RESET_ENERGY:
            raise PzemError(
                f"{self._where}: malformed reply to reset energy: function {response.function_code}"
            )
