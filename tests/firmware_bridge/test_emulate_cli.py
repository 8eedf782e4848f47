"""`gridbid emulate` prints ports a bridge can open, over ptys and over loopback sockets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from firmware_bridge.bridge import Bridge


@pytest.mark.parametrize("transport", [[], ["--socket"]], ids=["pty", "socket"])
def test_emulate_prints_ports_the_bridge_opens(transport):
    """F6: the emulated boards declare the emulator's --speed as their time factor."""
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "emulate", "--producers", "1", "--consumers", "2",
         "--seconds", "20", "--speed", "300", *transport],
        stdout=subprocess.PIPE, text=True,
    )
    bridge = Bridge()
    try:
        lines = [process.stdout.readline().split() for _ in range(3)]
        assert [(b, k) for b, k, _ in lines] == [
            ("pv-1", "producer"), ("load-1", "consumer"), ("load-2", "consumer")]
        for board_id, kind, device in lines:
            info = bridge.attach(device)
            assert (info.board_id, info.kind, info.protocol, info.time_factor) == (
                board_id, kind, 2, 300.0)
        bridge.set_relay("load-2", True)
        assert bridge.read("load-2").relays == (True,)
    finally:
        bridge.close()
        process.terminate()
        assert process.wait(timeout=10) == 0
