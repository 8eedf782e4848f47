"""A board emulator served on a pseudo-terminal, so pyserial opens it like a USB serial port."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator

log = logging.getLogger(__name__)


class PtyBoardServer:
    """Reads request lines from a pty's master side, writes replies and periodic readings."""

    _closes_on_eof = False  # a pty has no end of file; a socket connection does

    def __init__(self, board: BoardEmulator, report_interval: float = 0.5):
        self.board = board
        self.report_interval = report_interval
        self.device = ""
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the pty and start serving; returns the device path to give pyserial."""
        self._master, self._slave = os.openpty()
        # We keep the slave open so the pty survives clients closing and reopening it.
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as over a UART
        self.device = os.ttyname(self._slave)
        # With nobody reading the port a full buffer must drop output, not stall the board.
        os.set_blocking(self._master, False)
        return self._run(self._serve)

    def stop(self) -> None:
        """Stop serving and close the pty; an open client then sees the port vanish."""
        self._halt()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _run(self, target: Callable[[], None]) -> str:
        """Serve on a thread of the board's own; the device to give a client."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=target, name=f"board-{self.board.board_id}", daemon=True
        )
        self._thread.start()
        return self.device

    def _halt(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
            self._thread = None

    def _serve(self) -> None:
        buffer = b""
        next_report = time.monotonic() + self.report_interval
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if ready:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # EIO while no client has the slave open: nothing to read
                    chunk, _ = b"", time.sleep(0.02)
                else:
                    if not chunk and self._closes_on_eof:
                        return  # a socket client hung up
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():  # a blank line is a keep-alive habit of terminals: ignore
                        self._answer(line)
                if len(buffer) > protocol.MAX_LINE + 2:
                    buffer = b""  # garbage without a line end: drop it, as firmware would
            self.board.check_failsafe()
            for event in self.board.drain_events():
                self._write(event)
            now = time.monotonic()
            if now >= next_report:
                # Skip missed slots rather than burst: a late reading is not worth three.
                next_report = max(next_report + self.report_interval, now)
                self._report()

    def _answer(self, line: bytes) -> None:
        try:
            lines = self.board.answer(line)
        except Exception:  # a board must never die of a frame; log it as a firmware bug
            log.exception("board %s failed on %r", self.board.board_id, line[:130])
            return
        for reply in lines:
            self._write(reply)

    def _report(self) -> None:
        try:
            fields = self.board.reading_fields()
            line = self.board.event("READING", *fields)  # None before the first HELLO
        except Exception:  # e.g. a reading that no longer fits a line: keep serving
            log.exception("board %s could not report a reading", self.board.board_id)
            return
        if line:
            self._write(line)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError as err:  # buffer full (nobody reading) or port closing: drop the line
            log.debug("board %s: write dropped: %s", self.board.board_id, err)


class SocketBoardServer(PtyBoardServer):
    """The same board on a TCP port of 127.0.0.1, for pyserial's `socket://` URLs."""

    _closes_on_eof = True

    def start(self) -> str:
        """Listen on a free loopback port; returns the `socket://127.0.0.1:PORT` URL."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.device = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        return self._run(self._accept)

    def stop(self) -> None:
        """Stop listening and drop the client."""
        self._halt()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                self.board.check_failsafe()  # its own timer, with nobody connected too
                continue
            with conn:
                conn.setblocking(False)
                self._master = conn.fileno()
                self._serve()  # one client at a time, as on a serial line
                self._master = -1
