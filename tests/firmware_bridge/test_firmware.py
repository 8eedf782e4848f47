"""The C firmware's host build on a pty, driven by the bridge's own BoardClient over pyserial."""

from __future__ import annotations

import os
import queue
import random
import shutil
import subprocess
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.errors import BoardError
from firmware_bridge.protocol import Frame, Reading, checksum, decode, encode, parse_reading

from .common import raw_reply

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "firmware"
# 360 W at 10x: relay 0 passes 1 Wh per wall-clock second, so budgets run out quickly.
FLOW = ("--power", "360", "--speed", "10")
WH_PER_S = 1.0



@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host build (board-host), compiled once per session into a temp dir."""
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: install gcc and make "
                    "(Debian: apt-get install build-essential) to test the C firmware")
    build = tmp_path_factory.mktemp("firmware")
    result = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE_DIR), f"BUILD={build}", "CC=gcc"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"firmware build failed:\n{result.stdout}{result.stderr}")
    return build / "board-host"


class FirmwareBoard:
    """board-host with its stdin/stdout on a pty's master; hosts open `device` like a UART."""

    def __init__(self, binary: Path, options: tuple[str, ...]):
        master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes pass unchanged, as over a UART
        self.device = os.ttyname(self._slave)
        self.proc = subprocess.Popen([str(binary), *options], stdin=master, stdout=master)
        os.close(master)  # the board holds it now; we keep the slave so the pty outlives clients
        self.events: queue.Queue[Frame] = queue.Queue()
        self.client: BoardClient | None = None

    def connect(self) -> BoardClient:
        """A BoardClient on the board, its unsolicited lines going to `events`."""
        self.client = BoardClient(self.device, timeout=1.0, on_event=self.events.put)
        return self.client

    def write(self, data: bytes) -> None:
        """Raw bytes onto the line, next to whatever client is attached."""
        os.write(self._slave, data)

    def next_event(self, verb: str, timeout: float) -> Frame:
        """The next unsolicited frame with this verb (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                frame = self.events.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail(f"no !0 {verb} within {timeout} s")
            if frame.verb == verb:
                return frame

    def silent(self, verb: str, seconds: float) -> bool:
        """True if no unsolicited frame with this verb arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.events.get(timeout=left).verb == verb:
                    return False
            except queue.Empty:
                break
        return True

    def stop(self) -> None:
        """Close the client, stop the process, close the pty."""
        if self.client is not None:
            self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._slave)


@pytest.fixture
def start(firmware: Path) -> Iterator[Callable[..., FirmwareBoard]]:
    """start(*options): a running firmware board; all are stopped after the test."""
    boards: list[FirmwareBoard] = []

    def _start(*options: str) -> FirmwareBoard:
        board = FirmwareBoard(firmware, options)
        boards.append(board)
        return board

    yield _start
    for board in boards:
        board.stop()


def frame_bytes(body: str) -> bytes:
    """A line with a correct checksum, whatever its body (encode() refuses bad frames)."""
    return f"{body}*{checksum(body)}\n".encode("ascii")


def err(reply: Frame) -> tuple[int, str]:
    """(id, code) of an ERR reply; fails on anything else."""
    assert reply.verb == "ERR", reply
    return reply.req_id, reply.args[0]


def wrong_checksum(line: bytes) -> bytes:
    """The same line with a checksum that does not match."""
    return line[:-3] + b"%02X\n" % (int(line[-3:-1], 16) ^ 0x5A)


def budgets(reply: Frame) -> str:
    """The raw BUDGET field of a READ reply."""
    return next(a for a in reply.args if a.startswith("BUDGET="))


def test_hello_names_the_board_and_a_reading_follows_at_once(start) -> None:
    board = start("--id", "fw7", "--kind", "producer", "--relays", "3", "--report-ms", "5000")
    client = board.connect()
    asked = time.monotonic()
    assert client.hello() == BoardInfo("fw7", "producer", 3, 1)
    reading = parse_reading(board.next_event("READING", timeout=1.0).args)
    assert time.monotonic() - asked < 0.5  # not the periodic one: that is 5 s away
    assert reading.relays == (False, False, False)
    assert reading.budgets == (None, None, None)


def test_read_fields_parse_and_readings_repeat(start) -> None:
    board = start("--report-ms", "100")
    client = board.connect()
    reply = client.request("READ")
    keys = [arg.partition("=")[0] for arg in reply.args[1:]]
    assert keys == ["V", "I", "P", "WHIN", "WHOUT", "RELAYS", "T", "BUDGET"]
    reading = parse_reading(reply.args[1:])
    assert reading == Reading(12.6, 0.0, 0.0, 0.0, 0.0, (False,), uptime_s=reading.uptime_s,
                              budgets=(None,))
    first = parse_reading(board.next_event("READING", timeout=1.0).args)
    later = parse_reading(board.next_event("READING", timeout=1.0).args)
    assert 0.05 <= later.uptime_s - first.uptime_s <= 0.3


def test_relays_switch_as_confirmed_and_energy_flows_through_relay_0(start) -> None:
    board = start("--relays", "2", *FLOW)
    client = board.connect()
    client.set_relay(1, True)
    assert client.read().relays == (False, True)
    client.set_relay(0, True)
    time.sleep(0.2)
    flowing = client.read()
    assert flowing.relays == (True, True)
    assert flowing.power_w == 360.0 and flowing.current_a == pytest.approx(360 / 12.6, abs=1e-3)
    assert 0.15 * WH_PER_S <= flowing.wh_in <= 0.5 * WH_PER_S and flowing.wh_out == 0.0
    client.set_relay(0, False)
    client.set_relay(1, False)
    stopped = client.read()
    time.sleep(0.1)
    assert client.read().wh_in == stopped.wh_in and stopped.relays == (False, False)


ERRORS = [  # (line, (reply id, ERR code))
    (wrong_checksum(encode(">", 9, "RELAY", 0, 1)), (9, 1)),
    (b">9 HB\n", (9, 1)),  # no checksum
    (b">9 HB*6d\n", (9, 1)),  # lowercase hex
    (encode(">", 10, "FLY"), (10, 2)),
    (encode(">", 11, "RELAY", 5, 1), (11, 3)),
    (encode(">", 12, "RELAY", 0, 2), (12, 3)),
    (encode(">", 13, "RELAY", 0), (13, 3)),
    (encode(">", 14, "HELLO", "x"), (14, 3)),
    (encode(">", 15, "BUDGET", 0, "1.2345"), (15, 3)),
    (encode(">", 16, "BUDGET", 0, "-1"), (16, 3)),
    (encode(">", 17, "BUDGET", 1, "5"), (17, 3)),
    (b"complete garbage\n", (0, 4)),
    (encode("<", 18, "OK", "HB"), (18, 4)),  # only requests are accepted
    (frame_bytes(">19  HB"), (19, 4)),  # empty field
    (frame_bytes(">20 HB "), (20, 4)),  # trailing space
    (frame_bytes(">21"), (21, 4)),  # no verb
    (b">22 H*B*00\n", (22, 4)),  # two '*'
    (frame_bytes(">65536 HB"), (0, 4)),
    (frame_bytes(">23 H\x01B"), (23, 4)),  # control character
    (b">24 \xff*00\n", (24, 4)),  # not ASCII
]


def test_malformed_frames_get_the_documented_err_codes(start) -> None:
    board = start()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        for line, (req_id, code) in ERRORS:
            assert err(raw_reply(port, line)) == (req_id, str(code)), line
        assert raw_reply(port, encode(">", 30, "HELLO").replace(b"\n", b"\r\n")) == Frame(
            "<", 30, "OK", ("HELLO", "1", "fw1", "consumer", "1"))
        assert raw_reply(port, encode(">", 31, "READ")).args[6] == "RELAYS=0"  # nothing switched
    client = board.connect()
    with pytest.raises(BoardError) as unknown:
        client.request("FLY")
    with pytest.raises(BoardError) as no_relay:
        client.set_relay(3, True)
    assert (unknown.value.code, no_relay.value.code) == (2, 3)


def test_overlong_lines_are_dropped_and_the_board_keeps_answering(start) -> None:
    board = start()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        longest = ">40 HB " + "a" * (120 - 3 - len(">40 HB "))  # 120 characters with *CS
        assert raw_reply(port, frame_bytes(longest)).args[0] == "3"  # decoded: HB takes no args
        assert raw_reply(port, frame_bytes(longest).replace(b"\n", b"\r\n")).args[0] == "3"
        assert err(raw_reply(port, frame_bytes(longest + "a"))) == (40, "4")
        assert err(raw_reply(port, frame_bytes(">41 RELAY 0 1 " + "x" * 200))) == (41, "4")
        port.write(b"\x00" * 5000)  # line noise without a line end
        assert err(raw_reply(port, b"\n")) == (0, "4")
        for byte in encode(">", 42, "HELLO"):  # a frame that trickles in byte by byte
            port.write(bytes([byte]))
        assert port.readline() == encode("<", 42, "OK", "HELLO", 1, "fw1", "consumer", 1)
        assert raw_reply(port, encode(">", 43, "READ")).args[6] == "RELAYS=0"


def test_failsafe_opens_every_relay_when_heartbeats_stop(start) -> None:
    board = start("--relays", "2", "--failsafe-ms", "500", "--report-ms", "10000")
    client = board.connect()
    client.set_relay(0, True)
    client.set_relay(1, True)
    for _ in range(6):  # 0.9 s of heartbeats: longer than the timeout, but never a gap
        time.sleep(0.15)
        client.heartbeat()
    assert client.read().relays == (True, True)
    before = time.monotonic()
    client.heartbeat()
    after = time.monotonic()
    for _ in range(4):  # broken frames do not count as heartbeats
        time.sleep(0.1)
        board.write(wrong_checksum(encode(">", 50, "HB")))
    failsafe = board.next_event("FAILSAFE", timeout=1.0)
    tripped = time.monotonic()
    assert failsafe == Frame("!", 0, "FAILSAFE")
    # The board counts whole milliseconds, so it may trip up to 1 ms early by our clock.
    assert 0.5 - 0.002 <= tripped - before and tripped - after <= 0.5 + 0.25
    assert board.silent("FAILSAFE", 0.6)  # just once per silence
    assert client.read().relays == (False, False)  # and they stay open until the host acts
    client.set_relay(1, True)
    assert client.read().relays == (False, True)


@pytest.mark.parametrize("kind", ["consumer", "producer"])
def test_a_budget_opens_the_relay_by_itself(start, kind: str) -> None:
    board = start("--kind", kind, "--report-ms", "100", *FLOW)
    client = board.connect()

    def counter(reading: Reading) -> float:  # what the budget is taken from
        return reading.wh_in if kind == "consumer" else reading.wh_out

    client.set_relay(0, True)
    start_wh = counter(client.read())
    client.set_budget(0, 0.5)
    assert board.next_event("EXHAUSTED", timeout=3.0) == Frame("!", 0, "EXHAUSTED", ("0",))
    reading = client.read()
    assert reading.relays == (False,) and reading.budgets == (0.0,)
    step_wh = 0.1 * WH_PER_S  # one report interval's energy
    assert counter(reading) - start_wh == pytest.approx(0.5, abs=step_wh)
    with pytest.raises(BoardError, match="budget-exhausted") as refused:
        client.set_relay(0, True)
    assert refused.value.code == 3
    time.sleep(0.2)
    assert counter(client.read()) == counter(reading)  # nothing flows past an empty budget
    assert board.silent("EXHAUSTED", 0.1)  # said once
    client.set_budget(0, None)
    client.set_relay(0, True)
    reading = client.read()
    assert reading.relays == (True,) and reading.budgets == (None,)
    assert budgets(client.request("READ")) == "BUDGET=-"
    client.set_budget(0, 0.0)  # an empty budget on a closed relay opens it right away
    board.next_event("EXHAUSTED", timeout=0.5)
    assert client.read().relays == (False,)


def test_millis_wrap_does_not_upset_the_timers(start) -> None:
    board = start("--millis-start", str(2**32 - 300), "--failsafe-ms", "600", "--report-ms", "100")
    client = board.connect()
    client.set_relay(0, True)
    asked = time.monotonic()
    board.next_event("FAILSAFE", timeout=1.5)
    assert 0.55 <= time.monotonic() - asked <= 0.9
    assert 0.55 <= client.read().uptime_s <= 1.5


def random_lines(rng: random.Random, count: int) -> list[bytes]:
    """Lines of random bytes, then valid frames with one byte replaced, added or dropped
    (half of those with the checksum made right again, to get past it)."""
    lines = []
    for _ in range(count):
        line = bytes(rng.choice([b for b in range(256) if b != 0x0A])
                     for _ in range(rng.randint(1, 160)))
        lines.append(line)
    templates = [encode(">", rng.randint(1, 65535), *words)[:-1] for words in
                 (["HELLO"], ["READ"], ["HB"], ["RELAY", "0", "1"], ["RELAY", "0", "0"])]
    for _ in range(count):
        line = bytearray(rng.choice(templates))
        at, byte = rng.randrange(len(line)), rng.randrange(0x20, 0x7F)
        op = rng.choice(["replace", "insert", "drop"])
        if op == "replace":
            line[at] = byte
        elif op == "insert":
            line.insert(at, byte)
        else:
            del line[at]
        if rng.random() < 0.5 and line.count(b"*") == 1 and line.index(b"*") == len(line) - 3:
            body = line[:-3].decode("ascii")
            line = bytearray(f"{body}*{checksum(body)}".encode("ascii"))
        lines.append(bytes(line))
    # Blank lines get no answer at all; they have their own rule.
    return [line for line in lines if line.strip()]


def test_fuzz_every_line_gets_one_reply_like_the_emulators(start) -> None:
    board = start("--failsafe-ms", "60000", "--report-ms", "60000")
    twin = BoardEmulator("fw1", "consumer", read=lambda: Reading(12.6, 0, 0, 0, 0, (False,)))
    lines = random_lines(random.Random(20240601), 300)
    assert len(lines) > 550
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        for line in lines:
            reply = raw_reply(port, line + b"\n")
            expected = decode(twin.handle(line))
            assert reply.kind == "<" and reply.req_id == expected.req_id, line
            assert reply.verb == expected.verb and reply.args[:1] == expected.args[:1], line
            if reply.args[:1] in (("HELLO",), ("RELAY",), ("HB",)):
                assert reply.args == expected.args, line
        assert raw_reply(port, encode(">", 1, "HB")) == Frame("<", 1, "OK", ("HB",))
    assert board.proc.poll() is None
