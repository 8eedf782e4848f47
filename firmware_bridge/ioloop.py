"""One thread waiting on many descriptors (selectors: epoll or poll) and timers.

select() cannot watch a descriptor numbered 1024 or above, and a thread per port (pyserial's
ReaderThread, one emulator thread per board) costs 200 threads waking up for a town of 200
boards. An IoLoop serves any number of descriptors from one thread: callbacks run on it, so
they must be quick and must not wait for the loop themselves.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# How long remove() waits for a loop stuck in a callback before it gives the descriptor up.
REMOVE_WAIT_S = 5.0


class Timer:
    """A call scheduled on an IoLoop; cancel() keeps it from running (safe from any thread)."""

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run it (a no-op once it ran)."""
        self.cancelled = True


class IoLoop:
    """Readers on descriptors and timers, served by one daemon thread started on first use."""

    def __init__(self, name: str):
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._ops: list[Callable[[], None]] = []  # selector changes, applied on the loop thread
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # ties in the timer heap go first come, first served
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call callback() on the loop whenever fd is readable (or hung up, or failed)."""
        self._submit(lambda: self._register(fd, callback))

    def remove_reader(self, fd: int) -> None:
        """Stop watching fd; returns once the loop no longer does, so fd may be closed then."""
        done = threading.Event()

        def remove() -> None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass  # never added, or already gone
            done.set()

        if self._on_loop() or self._thread is None:
            self._apply_ops()  # an add still queued must not outlive this remove
            remove()
            return
        self._submit(remove)
        if not done.wait(REMOVE_WAIT_S):
            log.error("%s: loop did not release descriptor %d in %.0f s", self.name, fd,
                      REMOVE_WAIT_S)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run callback() on the loop after delay seconds; the Timer cancels it."""
        timer = Timer(time.monotonic() + max(delay, 0.0), callback)
        with self._lock:
            heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        if not self._on_loop():  # the loop itself looks at its timers before it waits again
            self._start()
            self._wake()
        return timer

    def stop(self) -> None:
        """End the loop thread (tests; a process's shared loops live as long as it does)."""
        self._stopped = True
        self._wake()
        if self._thread is not None and not self._on_loop():
            self._thread.join(timeout=2)

    def _on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def _submit(self, op: Callable[[], None]) -> None:
        with self._lock:
            self._ops.append(op)
        self._start()
        self._wake()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: the loop will wake

    def _register(self, fd: int, callback: Callable[[], None]) -> None:
        try:
            # A descriptor closed without remove_reader() left its old entry: its number is
            # someone else's now.
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        try:
            self._selector.register(fd, selectors.EVENT_READ, callback)
        except (OSError, ValueError) as err:  # closed before the loop got to it
            log.warning("%s: cannot watch descriptor %d: %s", self.name, fd, err)

    def _run(self) -> None:
        while not self._stopped:
            try:
                events = self._selector.select(self._timeout())
            except OSError as err:  # EBADF: a descriptor closed under us; drop it next round
                log.warning("%s: select failed: %s", self.name, err)
                self._forget_closed()
                continue
            for key, _ in events:
                if key.data is None:
                    self._drain_wake()
                else:
                    self._call(key.data)
            self._apply_ops()
            self._run_timers()

    def _timeout(self) -> float | None:
        with self._lock:
            if self._ops:
                return 0.0
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - time.monotonic())

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _apply_ops(self) -> None:
        with self._lock:
            ops, self._ops = self._ops, []
        for op in ops:
            self._call(op)

    def _run_timers(self) -> None:
        now = time.monotonic()
        due = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
        for timer in due:
            if not timer.cancelled:
                self._call(timer.callback)

    def _forget_closed(self) -> None:
        for key in list(self._selector.get_map().values()):
            try:
                os.fstat(key.fd)
            except OSError:
                self._selector.unregister(key.fd)

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # one port's bug must not stop every other port's reading
            log.exception("%s: callback failed", self.name)
