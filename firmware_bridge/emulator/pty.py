"""A board emulator served on a pseudo-terminal, so pyserial opens it like a USB serial port."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator

log = logging.getLogger(__name__)


class PtyBoardServer:
    """Reads request lines from a pty's master side, writes replies and periodic readings."""

    def __init__(self, board: BoardEmulator, report_interval: float = 0.5):
        self.board = board
        self.report_interval = report_interval
        self.device = ""
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the pty and start serving; the device path to give pyserial."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as a UART would
        self.device = os.ttyname(self._slave)
        # A full buffer (nobody reading the port) must drop readings, not block the board.
        os.set_blocking(self._master, False)
        self._thread = threading.Thread(
            target=self._serve, name=f"board-{self.board.board_id}", daemon=True
        )
        self._thread.start()
        return self.device

    def stop(self) -> None:
        """Stop serving and close the pty."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _serve(self) -> None:
        buffer = b""
        next_report = time.monotonic() + self.report_interval
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:
                    chunk = b""
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._write(self.board.handle(line.rstrip(b"\r")))
                if len(buffer) > protocol.MAX_LINE:
                    buffer = b""  # garbage without a line end: drop it, as firmware would
            if self.board.check_failsafe():
                self._write(protocol.encode(protocol.EVENT, 0, "FAILSAFE"))
            if time.monotonic() >= next_report:
                next_report += self.report_interval
                fields = protocol.reading_fields(self.board.read())
                self._write(protocol.encode(protocol.EVENT, 0, "READING", *fields))

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError as err:
            log.debug("board %s: write failed: %s", self.board.board_id, err)
