"""Protocol v1 framing: round trips, checksums, and malformed input that must never crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.errors import ERR_CHECKSUM, ERR_FRAME, FrameError
from firmware_bridge.protocol import Frame, Reading, decode, encode, parse_reading

TOKEN = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="*"),
    min_size=1, max_size=12,
)
VERB = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)


@given(kind=st.sampled_from(protocol.KINDS), req_id=st.integers(0, 0xFFFF), verb=VERB,
       args=st.lists(TOKEN, max_size=6))
def test_encode_decode_round_trip(kind: str, req_id: int, verb: str, args: list[str]) -> None:
    line = encode(kind, req_id, verb, *args)
    assert line.endswith(b"\n") and len(line) <= protocol.MAX_LINE + 1
    assert decode(line) == Frame(kind, req_id, verb, tuple(args))
    assert decode(line.rstrip(b"\n") + b"\r\n") == decode(line)  # boards accept CRLF too


@given(st.binary(max_size=160))
def test_random_bytes_give_frame_error_or_a_frame(data: bytes) -> None:
    try:
        frame = decode(data)
    except FrameError:
        return
    assert decode(encode(frame.kind, frame.req_id, frame.verb, *frame.args)) == frame


@given(base=st.builds(encode, st.sampled_from(protocol.KINDS), st.integers(0, 0xFFFF), VERB,
                      TOKEN), pos=st.integers(0, 200), byte=st.integers(0, 255))
def test_mutated_frames_never_raise_anything_else(base: bytes, pos: int, byte: int) -> None:
    mutated = bytearray(base)
    mutated[pos % len(mutated)] = byte
    try:
        decode(bytes(mutated))
    except FrameError:
        pass


@given(st.binary(max_size=160) | st.text(max_size=160))
def test_board_answers_any_line_with_a_valid_reply(data: bytes | str) -> None:
    board = BoardEmulator("b1", "consumer", read=lambda: Reading(12.0, 0, 0, 0, 0, (False,)))
    reply = decode(board.handle(data))
    assert reply.kind == protocol.REPLY and reply.verb in ("OK", "ERR")


def test_checksum_mismatch_is_error_code_1() -> None:
    good = encode(">", 7, "RELAY", 0, 1)
    bad = good.replace(b"RELAY 0 1", b"RELAY 0 0")
    with pytest.raises(FrameError, match="checksum mismatch") as caught:
        decode(bad)
    assert caught.value.code == ERR_CHECKSUM
    board = BoardEmulator("b1", "consumer", read=lambda: Reading(12.0, 0, 0, 0, 0, (False,)))
    reply = decode(board.handle(bad))
    assert (reply.req_id, reply.verb, reply.args[0]) == (7, "ERR", "1")
    assert board.relays == [False]
    assert decode(board.handle(good)) == Frame("<", 7, "OK", ("RELAY", "0", "1"))
    assert board.relays == [True]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "must start"),
        (b"HELLO*00", "must start"),
        (b">1 HELLO", "no '*'"),
        (b">1 HELLO*zz", "two uppercase hex"),
        (">1 HÉLLO*00".encode(), "non-ASCII"),
        (b">1 HE\x01LO*00", "control"),
        (b">x HELLO*" + protocol.checksum(">x HELLO").encode(), "request id"),
        (b">70000 HB*" + protocol.checksum(">70000 HB").encode(), "request id"),
        (b">1  HB*" + protocol.checksum(">1  HB").encode(), "empty fields"),
        (b">1*" + protocol.checksum(">1").encode(), "no verb"),
        (b">1 A*B*" + protocol.checksum(">1 A*B").encode(), "more than one"),
        (b">1 " + b"A" * 130 + b"*00", "longer than"),
    ],
)
def test_malformed_lines_say_what_is_wrong(line: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode(line)


def test_encode_refuses_what_it_cannot_frame() -> None:
    for bad in [("?", 1, "HB"), (">", 65536, "HB"), (">", 1, "A B"), (">", 1, "HB", "x*y"),
                (">", 1, "HB", "é"), (">", 1, "HB", "x" * 120)]:
        with pytest.raises(FrameError):
            encode(*bad)  # type: ignore[arg-type]


def test_reading_fields_round_trip() -> None:
    reading = Reading(12.71, 1.25, 15.9, 123.456, 12.345, (True, False), 0.734, 180.2, 42.5)
    fields = protocol.reading_fields(reading)
    assert fields == ["V=12.71", "I=1.250", "P=15.9", "WHIN=123.456", "WHOUT=12.345",
                      "RELAYS=10", "SOC=0.734", "PV=180.2", "T=42.5"]
    assert parse_reading(fields) == reading
    consumer = parse_reading(["V=12", "I=0", "P=0", "WHIN=1", "WHOUT=0", "RELAYS=0", "T=1",
                              "NEW=ignored"])
    assert consumer.soc is None and consumer.pv_w is None and consumer.relays == (False,)


@pytest.mark.parametrize("fields", [
    ["V=12", "I=0", "P=0", "WHIN=1", "WHOUT=0", "T=1"],  # no RELAYS
    ["V=12", "I=0", "P=0", "WHIN=1", "WHOUT=0", "RELAYS=2", "T=1"],
    ["V=x", "I=0", "P=0", "WHIN=1", "WHOUT=0", "RELAYS=0", "T=1"],
    ["V=nan", "I=0", "P=0", "WHIN=1", "WHOUT=0", "RELAYS=0", "T=1"],
    ["V", "I=0", "P=0", "WHIN=1", "WHOUT=0", "RELAYS=0", "T=1"],
])
def test_bad_readings_are_frame_errors(fields: list[str]) -> None:
    with pytest.raises(FrameError):
        parse_reading(fields)


def test_unparseable_id_is_answered_with_id_0() -> None:
    board = BoardEmulator("b1", "consumer", read=lambda: Reading(12.0, 0, 0, 0, 0, (False,)))
    reply = decode(board.handle(b"garbage"))
    assert (reply.req_id, reply.verb, reply.args[0]) == (0, "ERR", str(ERR_FRAME))
