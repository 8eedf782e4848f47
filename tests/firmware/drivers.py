"""Scenario drivers: the C firmware's host build in its scripted mode (stdio pipes + a control
socket) and the Python emulator under the same scripted clock and meter."""

from __future__ import annotations

import os
import select
import socket
import subprocess
from pathlib import Path

from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.protocol import Reading

from .scenarios import BoardSpec, Driver

# The scripted meter every driver models (hal_host.c in --control-fd mode).
METER_PERIOD_MS, METER_LATENCY_MS, METER_TIMEOUT_MS = 100, 20, 100
TICK_MAX_MS = 50  # BOARD_TICK_MS: the longest the firmware sleeps between passes


class _Lines:
    """Lines from a non-blocking file descriptor."""

    def __init__(self, fd: int):
        self.fd = fd
        os.set_blocking(fd, False)
        self.buffer = b""

    def _fill(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return False
        chunk = os.read(self.fd, 65536)
        if not chunk:
            raise AssertionError("the board closed its output (it exited)")
        self.buffer += chunk
        return True

    def line(self, timeout_s: float) -> bytes:
        while b"\n" not in self.buffer:
            if not self._fill(timeout_s):
                raise AssertionError(f"no line from the board within {timeout_s} s (hung?)")
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def pending(self) -> list[bytes]:
        while self._fill(0):
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines


class HostDriver(Driver):
    """board-host --control-fd: UART on stdin/stdout pipes, clock and meter on a socket."""

    name = "host"

    def __init__(self, binary: Path, *extra: str):
        self.binary = binary
        self.extra = extra  # more board-host options (--eeprom FILE, --meter-addr N)
        self.proc: subprocess.Popen[bytes] | None = None

    def open(self, spec: BoardSpec) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [str(self.binary), "--control-fd", str(theirs.fileno()), "--id", spec.board_id,
             "--kind", spec.kind, "--relays", str(spec.relays),
             "--failsafe-ms", str(spec.failsafe_ms), "--report-ms", str(spec.report_ms),
             "--millis-start", str(spec.millis_start), "--meter-ms", str(METER_PERIOD_MS),
             "--speed", "1", *self.extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=[theirs.fileno()])
        theirs.close()
        self.control = ours
        self.control_file = ours.makefile("rb")
        assert self.proc.stdout is not None
        self.out = _Lines(self.proc.stdout.fileno())
        if not spec.meter_plugged:
            self.unplug_meter()

    def _command(self, text: str) -> str:
        self.control.sendall(text.encode("ascii") + b"\n")
        answer = self.control_file.readline().decode("ascii").strip()
        assert answer.startswith("OK"), f"board-host refused {text!r}: {answer!r}"
        return answer

    def close(self) -> None:
        if self.proc is None:
            return
        self.control.close()
        self.control_file.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def send_line(self, line: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def read_line(self, timeout_s: float = 5.0) -> bytes:
        return self.out.line(timeout_s)

    def pending_lines(self) -> list[bytes]:
        return self.out.pending()

    def set_meter(self, mv: int, ma: int, dw: int, mwh_in: int, mwh_out: int,
                  soc_milli: int = -1, pv_dw: int = -1) -> None:
        self._command(f"METER {mv} {ma} {dw} {mwh_in} {mwh_out} {soc_milli} {pv_dw}")

    def unplug_meter(self) -> None:
        self._command("UNPLUG")

    def plug_meter(self) -> None:
        self._command("PLUG")

    def advance_ms(self, ms: int) -> None:
        self._command(f"ADVANCE {ms}")

    def relays(self) -> str:
        return self.state()["relays"]

    def state(self) -> dict[str, str]:
        """board-host's STATE: relays, id, addr, kicks (watchdog), ms."""
        words = self._command("STATE").split()[1:]
        return dict(w.split("=", 1) for w in words)


class _ScriptedMeter:
    """The scripted meter of the HALs' simulation mode (hal_host.c's hal_meter_poll)."""

    def __init__(self, plugged: bool):
        self.plugged = plugged
        self.values = (0, 0, 0, 0, 0, -1, -1)
        self.in_flight = self.polled = False
        self.asked = 0

    def poll(self, now: int) -> str:
        """'OK', 'PENDING' or 'FAULT', as hal_meter_poll at board time now (ms)."""
        if not self.in_flight:
            if self.polled and now - self.asked < METER_PERIOD_MS:
                return "PENDING"
            self.in_flight = self.polled = True
            self.asked = now
            return "ASKED"  # PENDING | METER_ASKED: the answer comes in a later call
        if not self.plugged:
            if now - self.asked < METER_TIMEOUT_MS:
                return "PENDING"
            self.in_flight = False
            return "FAULT"
        if now - self.asked < METER_LATENCY_MS:
            return "PENDING"
        self.in_flight = False
        return "OK"

    def due(self, now: int) -> int:
        """ms until the next answer, fault or request."""
        since = now - self.asked
        if not self.in_flight:
            return max(METER_PERIOD_MS - since, 0)
        return max((METER_LATENCY_MS if self.plugged else METER_TIMEOUT_MS) - since, 0)


class EmulatorDriver(Driver):
    """BoardEmulator on a scripted clock, stepped as the firmware's main loop: failsafe,
    meter poll (its energy charged to the relays closed at any moment since the last good
    answer's request went out, as board.c), events,
    periodic reading; the sleep between passes as board_idle_ms."""

    name = "emulator"

    def open(self, spec: BoardSpec) -> None:
        self.spec = spec
        self.now = 0
        self.meter = _ScriptedMeter(spec.meter_plugged)
        # The emulator compares float seconds; 1 us short keeps 5300/1000 - 300/1000 from
        # landing a hair under 5.0 (the driver steps whole ms, so nothing else changes).
        self.board = BoardEmulator(
            spec.board_id, spec.kind, read=self._reading, relay_count=spec.relays,
            failsafe_timeout=(spec.failsafe_ms - 0.001) / 1000, clock=lambda: self.now / 1000,
            polled_meter=True)
        self.out: list[bytes] = [self.board.banner()]
        self.mark: int | None = None  # the budgeted counter at the last answer
        self.charged = [False] * spec.relays
        self.since_ask = [False] * spec.relays  # closed since the latest request
        self.report_elapsed = 0
        self.session: str | None = None
        self._poll()  # the first pass, at boot

    def close(self) -> None:
        self.out = []

    def _reading(self) -> Reading:
        mv, ma, dw, mwh_in, mwh_out, soc, pv = self.meter.values
        return Reading(voltage_v=mv / 1000, current_a=ma / 1000, power_w=dw / 10,
                       wh_in=mwh_in / 1000, wh_out=mwh_out / 1000, relays=(),
                       soc=None if soc < 0 else soc / 1000, pv_w=None if pv < 0 else pv / 10)

    def send_line(self, line: bytes) -> None:
        self.out += [reply.rstrip(b"\n") + b"\n" for reply in self.board.answer(line.rstrip())]
        self.out += self.board.drain_events()
        self._mark_closed()
        if self.board.session != self.session:  # a HELLO: readings count from it
            self.session, self.report_elapsed = self.board.session, 0

    def _mark_closed(self) -> None:
        self.charged = [c or r for c, r in zip(self.charged, self.board.relays, strict=True)]
        self.since_ask = [c or r for c, r in zip(self.since_ask, self.board.relays, strict=True)]

    def read_line(self, timeout_s: float = 5.0) -> bytes:
        lines = self.pending_lines()
        assert lines, "the emulator sent nothing"
        self.out = [line + b"\n" for line in lines[1:]]
        return lines[0]

    def pending_lines(self) -> list[bytes]:
        lines, self.out = b"".join(self.out).split(b"\n")[:-1], []
        return lines

    def set_meter(self, mv: int, ma: int, dw: int, mwh_in: int, mwh_out: int,
                  soc_milli: int = -1, pv_dw: int = -1) -> None:
        self.meter.values = (mv, ma, dw, mwh_in, mwh_out, soc_milli, pv_dw)

    def unplug_meter(self) -> None:
        self.meter.plugged = False

    def plug_meter(self) -> None:
        self.meter.plugged = True

    def _answered(self) -> None:
        reading = self._reading()
        counter = reading.wh_out if self.spec.kind == "producer" else reading.wh_in
        raw = round(counter * 1000)
        charged = self.charged
        self.board.meter_answer(reading)  # METER OK before any EXHAUSTED, as the firmware
        if self.mark is not None:
            used = max(raw - self.mark, 0)
            for n, was_closed in enumerate(charged):
                if was_closed and used:
                    self.board.consume(n, used / 1000)
        self.mark = raw
        self.charged = [c or r for c, r in zip(self.since_ask, self.board.relays, strict=True)]

    def _poll(self) -> None:
        """One pass of the firmware's board_poll at self.now."""
        self.board.check_failsafe()
        status = self.meter.poll(self.now)
        if status == "OK":
            self._answered()
        elif status == "FAULT":
            self.board.meter_answer(None)
        elif status == "ASKED":
            self.since_ask = list(self.board.relays)
        self.out += self.board.drain_events()
        if self.report_elapsed >= self.spec.report_ms:
            late = self.report_elapsed - self.spec.report_ms
            self.report_elapsed = 0 if late >= self.spec.report_ms else late
            line = self.board.event("READING", *self.board.reading_fields())
            self.out += [line] if line else []

    def _idle_ms(self) -> int:
        step = TICK_MAX_MS
        if not self.board.failsafe_tripped:
            quiet = round((self.now / 1000 - self.board.last_frame) * 1000)
            step = min(step, max(self.spec.failsafe_ms - quiet, 0))
        if self.board.session is not None:
            step = min(step, max(self.spec.report_ms - self.report_elapsed, 0))
        return min(step, self.meter.due(self.now))

    def advance_ms(self, ms: int) -> None:
        left, zero_steps = ms, 0
        self._poll()  # board-host polls once at the time the command came
        while left > 0:
            step = min(left, self._idle_ms())
            zero_steps = zero_steps + 1 if step == 0 else 0
            step = 1 if zero_steps > 2 else step  # as hal_host_script.c's step_clock
            self.now += step
            self.report_elapsed += step
            left -= step
            self._poll()

    def relays(self) -> str:
        return "".join("1" if r else "0" for r in self.board.relays)
