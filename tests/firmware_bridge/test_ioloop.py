"""The one-thread loop under the port and emulator layers: readers, timers, a safe remove."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from firmware_bridge.ioloop import IoLoop


@pytest.fixture
def loop() -> Iterator[IoLoop]:
    """A loop of the test's own (the process's shared ones serve the boards)."""
    io = IoLoop("test-loop")
    yield io
    io.stop()


def test_timers_run_in_time_order_and_a_cancelled_one_never(loop: IoLoop) -> None:
    ran: list[str] = []
    done = threading.Event()
    loop.call_later(0.06, lambda: (ran.append("late"), done.set()))
    loop.call_later(0.02, lambda: ran.append("early")).cancel()
    loop.call_later(0.01, lambda: ran.append("first"))
    assert done.wait(5)
    assert ran == ["first", "late"]


def test_a_reader_is_called_per_readable_descriptor_and_a_failing_one_spares_the_loop(
    loop: IoLoop,
) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    got: list[bytes] = []
    second = threading.Event()

    def broken() -> None:
        os.read(r1, 100)
        raise RuntimeError("a port's bug")

    def reader() -> None:
        got.append(os.read(r2, 100))
        second.set()

    try:
        loop.add_reader(r1, broken)
        loop.add_reader(r2, reader)
        os.write(w1, b"x")
        os.write(w2, b"line\n")
        assert second.wait(5)
        assert got == [b"line\n"]
    finally:
        loop.remove_reader(r1)
        loop.remove_reader(r2)
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_remove_returns_only_once_no_callback_of_it_runs(loop: IoLoop) -> None:
    """So the caller may close the descriptor: its number cannot be read as another's."""
    r, w = os.pipe()
    entered, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> None:
        calls.append(os.read(r, 100))
        entered.set()
        release.wait(5)

    loop.add_reader(r, slow)
    os.write(w, b"x")
    assert entered.wait(5)
    removed = threading.Event()
    remover = threading.Thread(target=lambda: (loop.remove_reader(r), removed.set()))
    remover.start()
    assert not removed.wait(0.2)  # the callback is still running
    release.set()
    assert removed.wait(5)
    remover.join()
    os.write(w, b"y")  # no longer watched: nobody reads it
    os.close(r)
    os.close(w)
    assert calls == [b"x"]
