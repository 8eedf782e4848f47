"""The C firmware's host build (board-host) on a pty, as the firmware tests drive it."""

from __future__ import annotations

import os
import queue
import select
import subprocess
import time
import tty
from pathlib import Path

import pytest

from firmware_bridge.client import BoardClient
from firmware_bridge.protocol import Frame

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware"


class FirmwareBoard:
    """board-host with its stdin/stdout on a pty's master; hosts open `device` like a UART."""

    def __init__(self, binary: Path, options: tuple[str, ...]):
        master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes pass unchanged, as over a UART
        self.device = os.ttyname(self._slave)
        self.proc = subprocess.Popen([str(binary), *options], stdin=master, stdout=master)
        os.close(master)  # the board holds it now; we keep the slave so the pty outlives clients
        self.events: queue.Queue[Frame] = queue.Queue()
        self.client: BoardClient | None = None
        self.banner = self._banner()  # taken here, so no test's first read meets it

    def _banner(self) -> bytes:
        """The boot banner line the board sends first (fails the test after 5 s without)."""
        got = b""
        while not got.endswith(b"\n"):
            ready, _, _ = select.select([self._slave], [], [], 5.0)
            if not ready:
                self.stop()
                pytest.fail(f"board-host sent no boot banner: {got!r}")
            got += os.read(self._slave, 1)
        assert got.startswith(b"!0 BOOT 2 "), got
        return got

    def connect(self) -> BoardClient:
        """A BoardClient on the board, its unsolicited lines going to `events`."""
        self.client = BoardClient(self.device, timeout=1.0, on_event=self.events.put)
        return self.client

    def write(self, data: bytes) -> None:
        """Raw bytes onto the line, next to whatever client is attached."""
        os.write(self._slave, data)

    def next_event(self, verb: str, timeout: float) -> Frame:
        """The next unsolicited frame with this verb (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                frame = self.events.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail(f"no !0 {verb} within {timeout} s")
            if frame.verb == verb:
                return frame

    def silent(self, verb: str, seconds: float) -> bool:
        """True if no unsolicited frame with this verb arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.events.get(timeout=left).verb == verb:
                    return False
            except queue.Empty:
                break
        return True

    def stop(self) -> None:
        """Close the client, stop the process, close the pty."""
        if self.client is not None:
            self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._slave)
