"""The C firmware's host build on a pty, driven by the bridge's own BoardClient over pyserial."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
import serial

from firmware_bridge.client import BoardInfo
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.errors import BoardError
from firmware_bridge.protocol import (
    Frame,
    Reading,
    checksum,
    decode,
    decode_legacy,
    encode,
    encode_legacy,
    parse_hello,
    parse_reading,
)

from .common import decode_reply, masked, opened, raw_hello, raw_reply, with_crc, wrong_crc

# 360 W at 10x: relay 0 passes 1 Wh per wall-clock second, so budgets run out quickly.
FLOW = ("--power", "360", "--speed", "10")
WH_PER_S = 1.0


def err(reply: Frame) -> tuple[int, str]:
    """(id, code) of an ERR reply; fails on anything else."""
    assert reply.verb == "ERR", reply
    return reply.req_id, reply.args[0]


def budgets(reply: Frame) -> str:
    """The raw BUDGET field of a READ reply."""
    return next(a for a in reply.args if a.startswith("BUDGET="))


def test_hello_names_the_board_and_a_reading_follows_at_once(start) -> None:
    """F6: the host build declares its --speed (default 60) as the time factor."""
    board = start("--id", "fw7", "--kind", "producer", "--relays", "3", "--report-ms", "5000")
    client = board.connect()
    asked = time.monotonic()
    assert client.hello() == BoardInfo("fw7", "producer", 3, 2, 60.0)
    greeting = board.next_event("READING", timeout=1.0)
    assert greeting.req_id == 1  # the session's first event
    reading = parse_reading(greeting.args)
    assert time.monotonic() - asked < 0.5  # not the periodic one: that is 5 s away
    assert reading.relays == (False, False, False)
    assert reading.budgets == (None, None, None)
    assert start("--speed", "0.5").connect().hello().time_factor == 0.5


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
    time.sleep(0.05)  # READ answers with the last meter reading: one taken after the opening
    stopped = client.read()
    time.sleep(0.1)
    assert client.read().wh_in == stopped.wh_in and stopped.relays == (False, False)


def lowercase(crc: str) -> bytes:
    """The right CRC in lowercase hex (a wrong one when it has no letter to lower)."""
    lower = crc.lower()
    return (lower if lower != crc else f"{int(crc, 16) ^ 0xAAAA:04x}").encode()


def errors(s: str) -> list[tuple[bytes, tuple[int, int], str | None]]:
    """(line, (reply id, ERR code), the reply's key) under session s, opened with id 1."""
    return [
        (wrong_crc(encode(">", 9, "RELAY", 0, 1, session=s)), (9, 1), s),
        (b">9 HB\n", (9, 1), s),  # no checksum
        (b">9 HB*" + lowercase(checksum(">9 HB", s)) + b"\n", (9, 1), s),
        (encode(">", 9, "HB"), (9, 1), s),  # keyed with no session
        (encode_legacy(">", 9, "HB"), (9, 1), s),  # a v1 frame
        (encode(">", 10, "FLY", session=s), (10, 2), s),
        (encode(">", 11, "RELAY", 5, 1, session=s), (11, 3), s),
        (encode(">", 12, "RELAY", 0, 2, session=s), (12, 3), s),
        (encode(">", 13, "RELAY", 0, session=s), (13, 3), s),
        (encode(">", 14, "HELLO", "x"), (14, 3), None),  # answered unkeyed, as HELLOs are
        (encode(">", 15, "BUDGET", 0, "1.2345", session=s), (15, 3), s),
        (encode(">", 16, "BUDGET", 0, "-1", session=s), (16, 3), s),
        (encode(">", 17, "BUDGET", 1, "5", session=s), (17, 3), s),
        (encode(">", 17, "HB", session=s), (17, 5), s),  # a repeated id: a replay
        (encode(">", 3, "HB", session=s), (3, 5), s),  # an older one
        (b"complete garbage\n", (0, 4), s),
        (encode("<", 18, "OK", "HB", session=s), (18, 4), s),  # only requests are accepted
        (with_crc(">0 HB", s), (0, 4), s),  # id 0 names no request
        (with_crc(">19  HB", s), (19, 4), s),  # empty field
        (with_crc(">20 HB ", s), (20, 4), s),  # trailing space
        (with_crc(">21", s), (21, 4), s),  # no verb
        (b">22 H*B*0000\n", (22, 4), s),  # two '*'
        (with_crc(">65536 HB", s), (0, 4), s),
        (with_crc(">23 H\x01B", s), (23, 4), s),  # control character
        (b">24 \xff*0000\n", (24, 4), s),  # not ASCII
    ]


def test_malformed_frames_get_the_documented_err_codes(start) -> None:
    board = start()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        reply = raw_reply(port, encode(">", 1, "HB"))
        assert err(reply) == (1, "6")  # no session before a HELLO
        session = raw_hello(port, 1)
        for line, (req_id, code), key in errors(session):
            assert err(raw_reply(port, line, key)) == (req_id, str(code)), line
        reply = raw_reply(port, encode(">", 30, "HELLO").replace(b"\n", b"\r\n"))
        fresh = parse_hello(reply.args[1:]).session
        assert reply == Frame("<", 30, "OK", ("HELLO", "2", "fw1", "consumer", "1",
                                              f"SESSION={fresh}", "TF=60"))
        read = raw_reply(port, encode(">", 31, "READ", session=fresh), fresh)
        assert read.args[6] == "RELAYS=0"  # nothing switched
    client = board.connect()
    with pytest.raises(BoardError) as unknown:
        client.request("FLY")
    with pytest.raises(BoardError) as no_relay:
        client.set_relay(3, True)
    assert (unknown.value.code, no_relay.value.code) == (2, 3)


def test_a_v1_host_gets_a_v1_answer_naming_version_2(start) -> None:
    """F8: a v1 bridge is refused at HELLO in words it can read; no session opens."""
    board = start()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        port.write(encode_legacy(">", 1, "HELLO"))
        assert decode_legacy(port.readline()) == Frame(
            "<", 1, "OK", ("HELLO", "2", "fw1", "consumer", "1"))
        assert err(raw_reply(port, encode(">", 2, "RELAY", 0, 1))) == (2, "6")


def test_overlong_lines_are_dropped_and_the_board_keeps_answering(start) -> None:
    board = start()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        s = raw_hello(port, 1)
        pad = "a" * (120 - 5 - len(">40 HB "))
        assert raw_reply(port, with_crc(">40 HB " + pad, s), s).args[0] == "3"  # 120: decoded
        crlf = with_crc(">41 HB " + pad, s).replace(b"\n", b"\r\n")
        assert raw_reply(port, crlf, s).args[0] == "3"
        assert err(raw_reply(port, with_crc(">42 HB " + pad + "a", s), s)) == (42, "4")
        assert err(raw_reply(port, with_crc(">43 RELAY 0 1 " + "x" * 200, s), s)) == (43, "4")
        port.write(b"\x00" * 5000)  # line noise without a line end
        assert err(raw_reply(port, b"\n", s)) == (0, "4")
        for byte in encode(">", 44, "HELLO"):  # a frame that trickles in byte by byte
            port.write(bytes([byte]))
        hello = decode(port.readline())
        fresh = parse_hello(hello.args[1:]).session
        assert hello == Frame("<", 44, "OK", ("HELLO", "2", "fw1", "consumer", "1",
                                              f"SESSION={fresh}", "TF=60"))
        assert raw_reply(port, encode(">", 45, "READ", session=fresh), fresh).args[6] == "RELAYS=0"


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
        board.write(wrong_crc(encode(">", 50, "HB", session=client._session)))
    failsafe = board.next_event("FAILSAFE", timeout=1.0)
    tripped = time.monotonic()
    assert (failsafe.verb, failsafe.args) == ("FAILSAFE", ())
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
    assert board.next_event("EXHAUSTED", timeout=3.0).args == ("0",)
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


Line = Callable[[str | None], bytes]  # a fuzz line, given the board's session


def keyed(body: str, session: str | None) -> bytes:
    """body with the CRC a well-meaning host would give it: unkeyed for a HELLO request."""
    words = body.split(" ")
    hello = body.startswith(">") and len(words) > 1 and words[1] == "HELLO"
    return f"{body}*{checksum(body, '' if hello else session or '')}".encode("ascii")


def mutated(words: tuple[str, ...], req_id: int, at: int, byte: int, op: str, fix: bool) -> Line:
    """A valid frame keyed under the session, one byte replaced, added or dropped."""
    def line(session: str | None) -> bytes:
        raw = bytearray(keyed(" ".join([f">{req_id}", *words]), session))
        where = at % len(raw)
        if op == "replace":
            raw[where] = byte
        elif op == "insert":
            raw.insert(where, byte)
        else:
            del raw[where]
        if fix and raw.count(b"*") == 1 and raw.index(b"*") == len(raw) - 5:
            raw = bytearray(keyed(raw[:-5].decode("ascii"), session))
        return bytes(raw)
    return line


def random_lines(rng: random.Random, count: int) -> list[Line]:
    """Lines of random bytes, then valid frames with one byte replaced, added or dropped
    (half of those with the CRC made right again, to get past it)."""
    lines: list[Line] = []
    for _ in range(count):
        junk = bytes(rng.choice([b for b in range(256) if b != 0x0A])
                     for _ in range(rng.randint(1, 160)))
        if junk.strip():  # blank lines get no answer at all; they have their own rule
            lines.append(lambda _s, junk=junk: junk)
    templates = [("HELLO",), ("READ",), ("HB",), ("RELAY", "0", "1"), ("RELAY", "0", "0")]
    for _ in range(count):
        lines.append(mutated(rng.choice(templates), rng.randint(1, 65535), rng.randrange(200),
                             rng.randrange(0x20, 0x7F), rng.choice(["replace", "insert", "drop"]),
                             rng.random() < 0.5))
    return lines


def test_fuzz_every_line_gets_one_reply_like_the_emulators(start) -> None:
    board = start("--failsafe-ms", "60000", "--report-ms", "60000")
    twin = BoardEmulator("fw1", "consumer", read=lambda: Reading(12.6, 0, 0, 0, 0, (False,)),
                         time_factor=60.0)
    lines = random_lines(random.Random(20240601), 300)
    assert len(lines) > 550
    ours: str | None = None
    seen: set[tuple[str, str]] = set()
    with serial.Serial(board.device, 115200, timeout=1.0) as port:
        for make in lines:
            line = make(ours)
            port.write(line + b"\n")
            while (received := port.readline()).startswith(b"!"):
                pass  # the reading after a HELLO
            reply, how = decode_reply(received, ours)
            expected, twin_how = decode_reply(twin.handle(make(twin.session)), twin.session)
            assert (reply.kind, reply.req_id, reply.verb, how) == (
                expected.kind, expected.req_id, expected.verb, twin_how), line
            assert reply.args[:1] == expected.args[:1], line
            if reply.args[:1] in (("HELLO",), ("RELAY",), ("HB",)):
                assert masked(reply).args == masked(expected).args, line
            ours = opened(reply, how, ours)
            seen.add((reply.verb, reply.args[0]))
        # Some of each got through: new sessions, commands, replays, and every refusal.
        assert {("OK", "HELLO"), ("OK", "RELAY"), ("ERR", "1"), ("ERR", "4"), ("ERR", "5"),
                ("ERR", "6")} <= seen, seen
        final = encode(">", 65535, "HB", session=ours)
        assert raw_reply(port, final, ours) in (Frame("<", 65535, "OK", ("HB",)),
                                                Frame("<", 65535, "ERR", ("5", "replay")))
    assert board.proc.poll() is None
