"""The bridge's BoardClient on a real pty (pyserial) when opening the port reset the board
(DTR on Uno/Mega-class boards): the bootloader swallows the first HELLO. The "bootloader" here
is the test reading that HELLO off the pty itself before the board runs."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.errors import BoardTimeout
from firmware_bridge.protocol import Reading


class Pty:
    """A pty whose master side the test plays the board on; the client opens `device`."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)
        self.buffer = b""

    def line(self, timeout_s: float = 10.0) -> bytes:
        """The next line the client wrote (AssertionError after the hang bound)."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.master], [], [], timeout_s)
            assert ready, "the client sent nothing"
            self.buffer += os.read(self.master, 4096)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def quiet(self, timeout_s: float) -> bool:
        """True if the client sends nothing more within timeout_s."""
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        return not ready and b"\n" not in self.buffer

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty() -> Iterator[Pty]:
    """A fresh pty, closed after the test."""
    p = Pty()
    yield p
    p.close()


def test_boot_banner_makes_the_client_hello_again_at_once(firmware: Path, pty: Pty) -> None:
    """One try only and a 10 s timeout: HELLO can only succeed through the banner."""
    client = BoardClient(pty.device, timeout=10.0, hello_tries=1)
    result: list[BoardInfo | BaseException] = []

    def hello() -> None:
        try:
            result.append(client.hello())
        except BaseException as err:  # reported by the assertion below
            result.append(err)

    thread = threading.Thread(target=hello)
    thread.start()
    proc = None
    try:
        assert b" HELLO*" in pty.line()  # swallowed by the "bootloader"
        # The firmware boots now, its UART on the pty: banner first, then it answers.
        proc = subprocess.Popen([str(firmware), "--id", "dtr1"], stdin=pty.master,
                                stdout=pty.master)
        thread.join(timeout=15)
        assert result and result[0] == BoardInfo("dtr1", "consumer", 1, 2, 60.0), result
        assert client.boots == 1
        assert client.read().relays == (False,)
    finally:
        client.close()
        thread.join(timeout=15)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=5)


def _emulated(pty: Pty, swallow: int) -> threading.Thread:
    """A board without a banner (older firmware) that ignores the first `swallow` lines."""
    board = BoardEmulator("dtr2", "consumer", read=lambda: Reading(12.6, 0, 0, 0, 0, (False,)))

    def serve() -> None:
        for _ in range(swallow):
            pty.line()
        for reply in board.answer(pty.line()):
            os.write(pty.master, reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_without_banner_the_client_retries_hello_on_a_fresh_port(pty: Pty) -> None:
    client = BoardClient(pty.device, timeout=0.3, hello_tries=3)
    try:
        server = _emulated(pty, swallow=1)
        assert client.hello().board_id == "dtr2"
        server.join(timeout=5)
    finally:
        client.close()


def test_hello_retries_are_bounded(pty: Pty) -> None:
    """A board that never answers: three HELLOs, then BoardTimeout, then nothing more."""
    client = BoardClient(pty.device, timeout=0.2, hello_tries=3)
    try:
        with pytest.raises(BoardTimeout):
            client.hello()
        assert all(b" HELLO*" in pty.line() for _ in range(3))
        assert pty.quiet(0.3)
        with pytest.raises(BoardTimeout):  # no longer a fresh port: one HELLO only
            client.hello()
        assert b" HELLO*" in pty.line() and pty.quiet(0.3)
    finally:
        client.close()
