"""A board's byte line, cut into lines by one shared IoLoop thread for every port of the process.

pyserial opens and configures a device (its URL handlers, the exclusive lock, raw 115200 8N1),
but its read() and write() wait in select(), which fails on a descriptor numbered 1024 or
above, and its ReaderThread is a thread per port. Here the descriptor is read when the loop
says it is readable and written directly, waiting with poll() when the line is full.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import serial

from firmware_bridge import protocol
from firmware_bridge.errors import BoardTimeout, BridgeError
from firmware_bridge.ioloop import IoLoop

log = logging.getLogger(__name__)

_shared: IoLoop | None = None
_shared_lanes: Lanes | None = None
_shared_lock = threading.Lock()
LANES = 4  # threads delivering board events: a listener stuck on a disk or a lock stalls
# only the boards of its lane, never the port loop (replies keep flowing)


def board_ports() -> IoLoop:
    """The process's one loop reading every board port (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = IoLoop("board-ports")
        return _shared


def event_lanes() -> Lanes:
    """The process's threads that run board event listeners, in order per board."""
    global _shared_lanes
    with _shared_lock:
        if _shared_lanes is None:
            _shared_lanes = Lanes("board-events", LANES)
        return _shared_lanes


class Lanes:
    """A few threads running callbacks, those of one key in order, all off the port loop."""

    def __init__(self, name: str, count: int):
        self.name = name
        self._queues: list[queue.SimpleQueue[Callable[[], None]]] = [
            queue.SimpleQueue() for _ in range(count)]
        self._started = False
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    def run(self, key: str, callback: Callable[[], None]) -> None:
        """Run callback on the key's lane, after every callback queued there before."""
        with self._lock:
            if not self._started:
                for n, lane in enumerate(self._queues):
                    thread = threading.Thread(target=self._serve, args=(lane,), daemon=True,
                                              name=f"{self.name}-{n}")
                    self._threads.add(thread)
                    thread.start()
                self._started = True
        # hash() of a str is fixed within a process: one board, one lane, its events in order
        self._queues[hash(key) % len(self._queues)].put(callback)

    def serves_current_thread(self) -> bool:
        """Whether the caller runs on one of the lanes."""
        return threading.current_thread() in self._threads

    def _serve(self, lane: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            callback = lane.get()
            try:
                callback()
            except Exception:  # a listener's bug must not end the lane
                log.exception("%s: a board event listener failed", self.name)


class LinePort:
    """One open port: lines in go to on_line, a lost port to on_lost (both on the loop thread)."""

    def __init__(
        self, url: str, on_line: Callable[[bytes], None],
        on_lost: Callable[[BaseException | None], None], *, timeout: float = 1.0,
        loop: IoLoop | None = None,
    ):
        self.url = url
        self._on_line = on_line
        self._on_lost = on_lost
        self._loop = loop or board_ports()
        self._buffer = bytearray()
        self._lost = False
        self._closer, self.fd = _open(url, timeout)
        self._loop.add_reader(self.fd, self._readable)

    def write(self, data: bytes, timeout: float) -> None:
        """Send all of data; BoardTimeout when the line stays full for timeout seconds."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        poller = None
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                pass
            except OSError as err:
                raise BridgeError(str(err)) from err
            if not view:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardTimeout(f"the line stayed full for {timeout} s")
            if poller is None:  # poll, unlike select, takes any descriptor number
                poller = select.poll()
                poller.register(self.fd, select.POLLOUT)
            poller.poll(left * 1000)

    def close(self) -> None:
        """Stop reading and close the port (safe to call twice)."""
        self._loop.remove_reader(self.fd)
        closer, self._closer = self._closer, None
        if closer is not None:
            try:
                closer()
            except OSError as err:
                log.debug("%s: close failed: %s", self.url, err)

    def _readable(self) -> None:
        """On the loop thread: take what the port holds, hand on whole lines."""
        try:
            chunk = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:  # EIO: the other end of the pty closed (unplugged)
            self._lose(err)
            return
        if not chunk:  # end of file: the socket's peer hung up
            self._lose(ConnectionError("end of file"))
            return
        buffer = self._buffer
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            self._on_line(line)
        if len(buffer) > 4 * protocol.MAX_LINE:  # line noise cannot grow the buffer forever
            log.warning("%s: dropped %d bytes with no line end", self.url, len(buffer))
            buffer.clear()

    def _lose(self, err: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._loop.remove_reader(self.fd)  # on the loop: at once, so it stops waking us
        self._on_lost(err)


def _open(url: str, timeout: float) -> tuple[Callable[[], None], int]:
    """Open url; (its closer, its descriptor), non-blocking, with nothing stale to read."""
    if url.startswith("socket://"):
        return _open_socket(url, timeout)
    if "://" in url:
        raise BridgeError(f"cannot serve board port {url}: a device path or socket://host:port "
                          "is needed (pyserial's other URL handlers wait in select())")
    try:
        # exclusive: a second reader on the same tty would steal replies meant for us.
        port = _Device(url, baudrate=115200, timeout=0, exclusive=True)
        port.reset_input_buffer()  # what the board said while nobody listened is stale
    except (serial.SerialException, OSError, ValueError) as err:
        raise BridgeError(f"cannot open board port {url}: {err}") from err
    os.set_blocking(port.fd, False)
    return port.close, port.fd


class _Device(serial.Serial):
    """pyserial's POSIX port (open, lock, raw 115200 8N1) without the two pipes it keeps to
    interrupt its own select() waits: we never make them, so they would only be four more
    descriptors per port."""

    def open(self) -> None:
        """Open and configure the device as pyserial does, then close its abort pipes."""
        super().open()
        for name in ("pipe_abort_read_r", "pipe_abort_read_w",
                     "pipe_abort_write_r", "pipe_abort_write_w"):
            os.close(getattr(self, name))
            setattr(self, name, None)

    def close(self) -> None:
        """Close the device (and so release its lock); safe to call twice."""
        if self.is_open and self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.is_open = False


def _open_socket(url: str, timeout: float) -> tuple[Callable[[], None], int]:
    """A `socket://host:port` board (as pyserial names it): a TCP connection."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise BridgeError(f"bad board URL {url}: {err}") from err
    if not host or port is None or parts.path or parts.query:
        raise BridgeError(f"bad board URL {url}: expected socket://host:port")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as err:
        raise BridgeError(f"cannot open board port {url}: {err}") from err
    sock.setblocking(False)
    return sock.close, sock.fileno()
