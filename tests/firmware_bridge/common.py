"""Constants and helpers of the bridge tests (their fixtures are in conftest.py)."""

from __future__ import annotations

# Short protocol timers keep the suite fast; physics runs 600x so energy moves visibly.
FAILSAFE_S = 0.5
REPORT_S = 0.1


def raw_reply(port, line: bytes):
    """Write a raw line to a pyserial port; the next reply frame, skipping unsolicited ones."""
    from firmware_bridge.protocol import decode

    port.write(line)
    while True:
        received = port.readline()
        assert received.endswith(b"\n"), f"no reply to {line!r}"
        frame = decode(received)
        if frame.kind == "<":
            return frame
