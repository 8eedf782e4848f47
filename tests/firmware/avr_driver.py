"""The scenario suite's driver for the simulated ATmega1284P: the firmware built for the
scenario's BoardSpec, run by avr-sim --scripted (the test owns the simulated clock), its
USART0 on the harness's pty, a scripted PZEM-017 on USART1.

The meter is a real Modbus exchange at 9600 baud (a request every 100 ms, answered ~38 ms
later, a fault 100 ms after an unanswered request), and a PZEM-017 carries 0.01 V, 0.01 A,
0.1 W and whole Wh: values finer than that reach the board rounded down."""

from __future__ import annotations

import os
import select
import subprocess
import tty
from collections.abc import Callable
from pathlib import Path

from .avr_sim import build_avr
from .scenarios import BoardSpec, Driver

METER_PERIOD_MS = METER_TIMEOUT_MS = 100  # as the scripted meter of the other drivers
UNTIL_LINE_MS = 2000  # simulated ms a reply may take before read_line gives up
BYTE_MS = 10 / 115.2  # a byte on the bridge's line (115200 8N1), ms


def spec_options(spec: BoardSpec) -> tuple[str, ...]:
    """The avr Makefile's variables for a BoardSpec (the rest of its config is the EEPROM's)."""
    kind = "BOARD_PRODUCER" if spec.kind == "producer" else "BOARD_CONSUMER"
    return (f"AVR_RELAYS={spec.relays}", f"FAILSAFE_MS={spec.failsafe_ms}",
            f"REPORT_MS={spec.report_ms}", f"MILLIS_START={spec.millis_start}", f"KIND={kind}",
            f"METER_PERIOD_MS={METER_PERIOD_MS}", f"METER_TIMEOUT_MS={METER_TIMEOUT_MS}")


class AvrBuilds:
    """One firmware build per distinct set of options, kept for the session."""

    def __init__(self, root: Path):
        self.root = root
        self.harness: Path | None = None
        self._elves: dict[tuple[str, ...], Path] = {}

    def __call__(self, spec: BoardSpec) -> tuple[Path, Path]:
        """(elf, harness) for this spec."""
        options = spec_options(spec)
        if options not in self._elves:
            elf, harness, _ = build_avr(self.root / f"b{len(self._elves)}", *options)
            self._elves[options] = elf
            self.harness = self.harness or harness
        assert self.harness is not None
        return self._elves[options], self.harness


class AvrDriver(Driver):
    """avr-sim --scripted: commands on its stdin, the board's UART on a pty."""

    name = "avr"

    def __init__(self, builds: Callable[[BoardSpec], tuple[Path, Path]]):
        self.builds = builds
        self.proc: subprocess.Popen[str] | None = None
        self.relay_count = 1
        self.kind = "consumer"
        self.buffer = b""
        self.clock_ms = 0.0  # the scenario's clock: simulated ms since the board's boot

    def open(self, spec: BoardSpec) -> None:
        elf, harness = self.builds(spec)
        self.relay_count, self.kind = spec.relays, spec.kind
        self.proc = subprocess.Popen(
            # --meter-addr 0: the meter answers any address, as the suite's scripted meter
            # does after CONFIG moves the board to another one
            [str(harness), str(elf), "--scripted", "--id", spec.board_id, "--meter-addr", "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)
        assert self.proc.stdout is not None
        device = next(line for line in self.proc.stdout if line.startswith("PTY ")).split()[1]
        self.port = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.port)
        self.buffer, self.clock_ms, self.booted_at = b"", 0.0, None
        if not spec.meter_plugged:
            self.unplug_meter()  # before the board ever ran

    def _command(self, text: str) -> str:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        word = text.split()[0]
        for line in self.proc.stdout:
            if line.startswith(("OK ", "ERR ", "CPU ")):
                assert line.startswith(f"OK {word}"), f"avr-sim: {text!r} -> {line!r}"
                return line.strip()
        raise AssertionError(f"avr-sim exited during {text!r}")

    def close(self) -> None:
        if self.proc is None:
            return
        os.close(self.port)
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # EOF: it quits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc = None

    def _drain_port(self) -> None:
        while select.select([self.port], [], [], 0)[0]:
            try:
                chunk = os.read(self.port, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.buffer += chunk

    def send_line(self, line: bytes) -> None:
        os.write(self.port, line)

    def read_line(self, timeout_s: float = 5.0) -> bytes:
        self._drain_port()
        if b"\n" not in self.buffer:
            done = self._command(f"until-line {UNTIL_LINE_MS}")
            self._drain_port()
            if self.booted_at is None:  # the boot banner: board_init ran its wire time before
                banner = self.buffer.split(b"\n", 1)[0]
                self.booted_at = float(done.split()[3]) - (len(banner) + 1) * BYTE_MS
        assert b"\n" in self.buffer, f"avr: no line within {UNTIL_LINE_MS} simulated ms"
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def pending_lines(self) -> list[bytes]:
        self._drain_port()
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines

    def set_meter(self, mv: int, ma: int, dw: int, mwh_in: int, mwh_out: int,
                  soc_milli: int = -1, pv_dw: int = -1) -> None:
        # A PZEM-017 has one energy register: into the load (consumer) or onto the bus.
        mwh = mwh_out if self.kind == "producer" else mwh_in
        self._command(f"set {mv / 1000} {abs(ma) / 1000} {abs(dw) / 10} {mwh // 1000}")

    def unplug_meter(self) -> None:
        self._command("unplug")

    def plug_meter(self) -> None:
        self._command("plug")

    def advance_ms(self, ms: int) -> None:
        # Keep the board's clock on the scenario's: the ms its UART exchanges took (a host
        # build answers in no time) come off the next step instead of adding up.
        self.clock_ms += ms
        self._command(f"advance-to {(self.booted_at or 0.0) + self.clock_ms:.3f}")

    def relays(self) -> str:
        return self._command(f"relays {self.relay_count}").split()[2]
