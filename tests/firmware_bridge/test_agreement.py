"""The emulator and the C firmware answer one request script frame for frame (protocol v2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware_bridge.emulator import Microgrid
from firmware_bridge.protocol import Frame, encode, encode_legacy

from .common import decode_reply, opened, with_crc

MEASURED = {"V", "I", "P", "WHIN", "WHOUT", "T", "SOC", "PV"}  # physics, not protocol


@dataclass
class Side:
    """One board under test as the script sees it: its port and its sessions so far."""

    port: serial.Serial
    sessions: list[str] = field(default_factory=list)

    @property
    def session(self) -> str | None:
        """The session open now."""
        return self.sessions[-1] if self.sessions else None


Step = tuple[Callable[[Side], bytes], int]  # (the line, given the side; lines it answers with)


def req(req_id: int, *words: object, session: str = "now") -> Callable[[Side], bytes]:
    """A request keyed with the side's session: "now", "first" (an earlier one) or "none"
    (as every HELLO is)."""
    def line(side: Side) -> bytes:
        key = {"now": side.session, "first": (side.sessions or [""])[0], "none": ""}[session]
        key = "" if words[0] == "HELLO" else key
        return encode(">", req_id, *words, session=key or "")
    return line


def raw(data: bytes) -> Callable[[Side], bytes]:
    """The same bytes on both sides."""
    return lambda _side: data


SCRIPT: list[Step] = [
    (req(1, "RELAY", 0, 1, session="none"), 1),  # before any HELLO: ERR 6
    (req(1, "HELLO"), 2),  # the reply, then the reading of the new session
    (req(2, "READ"), 1),
    (req(3, "RELAY", 0, 1), 1),
    (req(4, "BUDGET", 0, "0"), 2),  # an empty budget opens the closed relay: EXHAUSTED
    (req(5, "RELAY", 0, 1), 1),  # refused: budget-exhausted
    (req(6, "BUDGET", 0, "-"), 1),
    (req(3, "RELAY", 0, 1), 1),  # step 4 replayed: ERR 5
    (req(6, "HB"), 1),  # a repeated id: ERR 5
    (req(7, "HB", session="none"), 1),  # keyed with no session: ERR 1
    (raw(encode_legacy(">", 7, "HB")), 1),  # a v1 frame: ERR 1
    (raw(encode_legacy(">", 8, "HELLO")), 1),  # a v1 host's HELLO: a v1 answer naming v2
    (req(9, "HB"), 1),  # ... which opened no session
    (req(10, "RELAY", 0, 2), 1),
    (req(11, "FLY"), 1),
    (req(12, "HELLO", "x"), 1),
    (lambda side: with_crc(">0 HB", side.session or ""), 1),
    (lambda side: encode("<", 13, "OK", "HB", session=side.session or ""), 1),
    (raw(b"complete garbage\n"), 1),
    (req(14, "RELAY", 0, 1), 1),
    (req(2, "HELLO"), 2),  # a new session: ids may start low again
    (req(50, "RELAY", 0, 0, session="first"), 1),  # recorded in the first session: ERR 1
    (req(3, "READ"), 1),  # relay 0 still closed
    (req(4, "RELAY", 0, 0), 1),
    (req(5, "READ"), 1),
]


def normal(frame: Frame, how: str) -> tuple:
    """What both boards must agree on: everything but the session id, measured values and
    the people-only text of an ERR."""
    if frame.verb == "ERR":
        return frame.kind, frame.req_id, frame.verb, frame.args[:1], how
    args = []
    for arg in frame.args:
        key, eq, value = arg.partition("=")
        if key == "SESSION" or (eq and key in MEASURED):
            arg = f"{key}=*"
        elif eq and key == "BUDGET":
            arg = "BUDGET=" + ",".join(b if b == "-" else "*" for b in value.split(","))
        args.append(arg)
    return frame.kind, frame.req_id, frame.verb, tuple(args), how


def run(side: Side) -> list[list[tuple]]:
    """The script on one board: per step, the frames it sent back, normalised."""
    answers = []
    for line, count in SCRIPT:
        side.port.write(line(side))
        frames = []
        for _ in range(count):
            received = side.port.readline()
            while received.startswith(b"!0 BOOT "):  # the boot banner, if still buffered
                received = side.port.readline()
            assert received.endswith(b"\n"), f"{count} lines expected for {line(side)!r}"
            frame, how = decode_reply(received, side.session)
            if (new := opened(frame, how, side.session)) != side.session:
                side.sessions.append(new)
            frames.append(normal(frame, how))
        answers.append(frames)
    return answers


def test_emulator_and_firmware_agree_frame_for_frame(start) -> None:
    """F8: the same requests, replays and broken frames get the same answers from the
    emulator and the C firmware: ids, verbs, ERR codes, keys, HELLO fields, relay states."""
    quiet = 600.0  # no periodic reading or failsafe may slip in between the script's lines
    grid = Microgrid(speed=60.0, failsafe_timeout=quiet, report_interval=quiet)
    grid.add_consumer("fw1")
    firmware = start("--id", "fw1", "--kind", "consumer", "--speed", "60",
                     "--report-ms", str(int(quiet * 1000)), "--failsafe-ms", str(int(quiet * 1000)))
    try:
        devices = grid.start()
        with serial.Serial(devices["fw1"], 115200, timeout=1.0) as emulated, \
                serial.Serial(firmware.device, 115200, timeout=1.0) as built:
            ours, theirs = run(Side(emulated)), run(Side(built))
    finally:
        grid.stop()
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"step {step}: emulator {a} != firmware {b}"
    assert ours[1][0][3][:5] == ("HELLO", "2", "fw1", "consumer", "1")
    assert ours[1][0][3][5:] == ("SESSION=*", "TF=60")
    assert [f[2:4] for f in ours[4]] == [("OK", ("BUDGET", "0", "0.000")), ("EXHAUSTED", ("0",))]
    assert ours[7][0][3] == ("5",) and ours[21][0][3] == ("1",)
    assert "RELAYS=1" in ours[22][0][3] and "RELAYS=0" in ours[24][0][3]

