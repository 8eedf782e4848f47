"""Board emulators served on pseudo-terminals (or loopback TCP), so pyserial opens them like USB
serial ports; every board of the process is served by one IoLoop thread (`emulated_boards()`):
200 boards are 200 descriptors on one epoll, not 200 threads polling every 20 ms."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import tty

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.ioloop import IoLoop, Timer

log = logging.getLogger(__name__)

# How often every served board's failsafe timer and owed events (EXHAUSTED, FAILSAFE) are
# looked at: the one loop's 20 ms round over all boards, as each board's thread did before.
HOUSEKEEPING_S = 0.02


class _Served:
    """The process's emulator loop and the boards on it, kept by one periodic round."""

    def __init__(self) -> None:
        self.loop = IoLoop("emulated-boards")
        self._lock = threading.Lock()
        self._servers: set[PtyBoardServer] = set()
        self._timer: Timer | None = None

    def add(self, server: PtyBoardServer) -> None:
        with self._lock:
            self._servers.add(server)
            if self._timer is None:
                self._timer = self.loop.call_later(HOUSEKEEPING_S, self._round)

    def discard(self, server: PtyBoardServer) -> None:
        with self._lock:
            self._servers.discard(server)

    def _round(self) -> None:
        with self._lock:
            servers = list(self._servers)
            self._timer = self.loop.call_later(HOUSEKEEPING_S, self._round) if servers else None
        for server in servers:
            server.housekeep()


_served: _Served | None = None
_served_lock = threading.Lock()


def emulated_boards() -> _Served:
    """The process's one loop serving every emulated board (started on first use)."""
    global _served
    with _served_lock:
        if _served is None:
            _served = _Served()
        return _served


class PtyBoardServer:
    """Reads request lines from a pty's master side, writes replies and periodic readings."""

    _closes_on_eof = False  # a pty has no end of file; a socket connection does

    def __init__(self, board: BoardEmulator, report_interval: float = 0.5):
        self.board = board
        self.report_interval = report_interval
        self.device = ""
        self._master = self._slave = -1
        self._buffer = b""
        self._served = emulated_boards()
        self._loop = self._served.loop
        self._report_timer: Timer | None = None
        self._serving = False

    def start(self) -> str:
        """Open the pty and start serving; returns the device path to give pyserial."""
        self._master, self._slave = os.openpty()
        # We keep the slave open so the pty survives clients closing and reopening it.
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as over a UART
        self.device = os.ttyname(self._slave)
        # With nobody reading the port a full buffer must drop output, not stall the board.
        os.set_blocking(self._master, False)
        self._begin()
        self._connect(self._master)
        self._write(self.board.banner())  # as firmware boots: a host already there learns it
        return self.device

    def stop(self) -> None:
        """Stop serving and close the pty; an open client then sees the port vanish."""
        self._end()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def housekeep(self) -> None:
        """The board's own timers, on the loop's round: its failsafe, the events it owes."""
        if not self._serving:
            return
        self.board.check_failsafe()
        if self._master >= 0:
            for event in self.board.drain_events():
                self._write(event)

    def _begin(self) -> None:
        """Report readings and keep the board's timers from now on."""
        self._serving = True
        self._served.add(self)
        self._schedule_report(time.monotonic() + self.report_interval)

    def _end(self) -> None:
        """Stop every timer and reader of this board (returns once the loop let go)."""
        self._serving = False
        self._served.discard(self)
        if self._report_timer is not None:
            self._report_timer.cancel()
        if self._master >= 0:
            self._loop.remove_reader(self._master)

    def _connect(self, fd: int) -> None:
        self._buffer = b""
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        """On the loop: the lines the host sent, each answered."""
        fd = self._master
        if fd < 0:
            return
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO while no client has the slave open: nothing to read
            if self._closes_on_eof:
                self._hang_up()  # a socket reset by its client
                return
            self._loop.remove_reader(fd)  # level-triggered: look again a little later
            self._loop.call_later(HOUSEKEEPING_S, lambda: self._rewatch(fd))
            return
        if not chunk and self._closes_on_eof:
            self._hang_up()  # a socket client hung up
            return
        buffer = self._buffer + chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():  # a blank line is a keep-alive habit of terminals: ignore
                self._answer(line)
        if len(buffer) > protocol.MAX_LINE + 2:
            buffer = b""  # garbage without a line end: drop it, as firmware would
        self._buffer = buffer

    def _rewatch(self, fd: int) -> None:
        if self._serving and self._master == fd:
            self._loop.add_reader(fd, self._readable)

    def _hang_up(self) -> None:
        """A pty never hangs up; see SocketBoardServer."""

    def _schedule_report(self, when: float) -> None:
        self._report_timer = self._loop.call_later(when - time.monotonic(),
                                                   lambda: self._on_report(when))

    def _on_report(self, due: float) -> None:
        if not self._serving:
            return
        if self._master >= 0:
            self._report()
        # Skip missed slots rather than burst: a late reading is not worth three.
        self._schedule_report(max(due + self.report_interval, time.monotonic()))

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
        self._listener.setblocking(False)
        self._conn: socket.socket | None = None
        self.device = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._begin()
        self._loop.add_reader(self._listener.fileno(), self._accept)
        return self.device

    def stop(self) -> None:
        """Stop listening and drop the client."""
        self._end()
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()
        if self._conn is not None:
            self._conn.close()
            self._conn, self._master = None, -1

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        # One client at a time, as on a serial line: the next waits in the backlog meanwhile.
        self._loop.remove_reader(self._listener.fileno())
        conn.setblocking(False)
        self._conn, self._master = conn, conn.fileno()
        self._connect(self._master)

    def _hang_up(self) -> None:
        self._loop.remove_reader(self._master)
        if self._conn is not None:
            self._conn.close()
        self._conn, self._master = None, -1
        if self._serving:
            self._loop.add_reader(self._listener.fileno(), self._accept)
