"""The ATmega1284P firmware in libsimavr (firmware_bridge/firmware/avr/harness), as tests drive it.

`build_avr()` runs the Makefile's AVR targets; `AvrSim` starts the harness, reads the pty path
it prints, keeps its stdout lines (LINE-IN / RELAY with simulated milliseconds) and sends it
meter commands. It is meant to become the AVR driver of the firmware scenario suite."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from firmware_bridge.client import BoardClient
from firmware_bridge.protocol import Frame

REPO = Path(__file__).resolve().parents[2]
AVR_DIR = REPO / "firmware_bridge" / "firmware" / "avr"
SIM_HEADER = Path("/usr/include/simavr/sim_avr.h")
SIZE_LINE = re.compile(r"flash (\d+) B, RAM (\d+) B static")


def toolchain_missing() -> str | None:
    """Why the AVR build cannot run here, or None (make test-deps installs all of it)."""
    for tool in ("avr-gcc", "avr-objcopy", "avr-size", "cc"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (make system-deps installs gcc-avr avr-libc)"
    if not SIM_HEADER.exists():
        return "libsimavr-dev not installed (make system-deps installs it)"
    return None


def build_avr(build_dir: Path, *options: str) -> tuple[Path, Path, str]:
    """Build firmware and harness into build_dir with make options: (elf, harness, output)."""
    done = subprocess.run(
        ["make", "-C", str(AVR_DIR), f"BUILD={build_dir}", *options, "all", "harness"],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"AVR build failed:\n{done.stdout}\n{done.stderr}")
    return build_dir / "board-avr.elf", build_dir / "avr-sim", done.stdout


class AvrSim:
    """One simulated board: harness process, its pty, its log of simulated-time events."""

    def __init__(self, harness: Path, elf: Path, board_id: str = "avr7", meter_addr: int = 1):
        self.proc = subprocess.Popen(
            [str(harness), str(elf), "--id", board_id, "--meter-addr", str(meter_addr)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._log_lock = threading.Lock()
        self.device = self._first_line().removeprefix("PTY ")
        threading.Thread(target=self._pump, daemon=True).start()
        self.events: queue.Queue[Frame] = queue.Queue()
        self.client: BoardClient | None = None
        self.started = time.monotonic()

    def _first_line(self) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("PTY "):
                return line.strip()
        pytest.fail(f"avr-sim printed no PTY line (exit {self.proc.poll()})")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._log_lock:
                self.log.append(line.strip())
            self.lines.put(line.strip())

    def connect(self) -> BoardClient:
        """The real bridge client on the pty, unsolicited frames going to `events`."""
        self.client = BoardClient(self.device, timeout=1.0, on_event=self.events.put)
        return self.client

    def command(self, text: str) -> str:
        """Send a harness command; its OK/TIME/STATS answer line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        word = text.split()[0]
        while True:
            line = self.lines.get(timeout=5)
            if line.startswith(("OK ", "TIME", "STATS", "ERR")) and (
                word in line or not line.startswith("OK ")
            ):
                return line

    def set_meter(self, volts: float, amps: float, watts: float, wh: int) -> None:
        """The scripted meter's next answers (PZEM-017 units: 0.01 V, 0.01 A, 0.1 W, 1 Wh)."""
        self.command(f"set {volts} {amps} {watts} {wh}")

    def wait_meter(self, timeout: float = 5.0) -> None:
        """Until the scripted meter answered the board once (before that, readings lack V)."""
        deadline = time.monotonic() + timeout
        while "answers=0 " in self.command("stats"):
            if time.monotonic() > deadline:
                pytest.fail("the board never asked the meter")
            time.sleep(0.05)

    def entries(self, prefix: str) -> list[list[str]]:
        """Harness log lines starting with prefix, split into words."""
        with self._log_lock:
            return [line.split() for line in self.log if line.startswith(prefix + " ")]

    def next_event(self, verb: str, timeout: float) -> Frame:
        """The next unsolicited frame with this verb (others skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.events.get(timeout=left)
            except queue.Empty:
                break
            if frame.verb == verb:
                return frame
        pytest.fail(f"no !{verb} within {timeout} s")

    def cpu_seconds(self) -> float:
        """User + system CPU the harness used so far (it should mostly sleep)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Close the client and stop the harness (quit, then terminate, then kill)."""
        if self.client is not None:
            self.client.close()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the harness quits
            self.proc.wait(timeout=3)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()
