"""Protocol v2 framing: round trips, CRCs, sessions, replays, and malformed input that must
never crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.errors import ERR_CHECKSUM, ERR_FRAME, ERR_REPLAY, ERR_SESSION, FrameError
from firmware_bridge.protocol import Frame, Reading, decode, encode, parse_hello, parse_reading

from .common import with_crc

TOKEN = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="*"),
    min_size=1, max_size=12,
)
VERB = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)
SESSION = st.text(alphabet="0123456789ABCDEF", min_size=8, max_size=8)


def idle_board(**options) -> BoardEmulator:
    """A consumer board with a still meter."""
    return BoardEmulator("b1", "consumer", read=lambda: Reading(12.0, 0, 0, 0, 0, (False,)),
                         **options)


def opened(board: BoardEmulator, req_id: int = 1) -> str:
    """HELLO the board; the session it opened."""
    reply = decode(board.handle(encode(">", req_id, "HELLO")))
    return parse_hello(reply.args[1:]).session


def send(board: BoardEmulator, session: str, req_id: int, verb: str, *args: object) -> Frame:
    """A request keyed with the session; the board's reply, checked under it."""
    return decode(board.handle(encode(">", req_id, verb, *args, session=session)), session)


@given(kind=st.sampled_from(protocol.KINDS), req_id=st.integers(0, 0xFFFF), verb=VERB,
       args=st.lists(TOKEN, max_size=6), session=SESSION)
def test_encode_decode_round_trip(
    kind: str, req_id: int, verb: str, args: list[str], session: str
) -> None:
    line = encode(kind, req_id, verb, *args, session=session)
    assert line.endswith(b"\n") and len(line) <= protocol.MAX_LINE + 1
    assert decode(line, session) == Frame(kind, req_id, verb, tuple(args))
    assert decode(line.rstrip(b"\n") + b"\r\n", session) == decode(line, session)  # CRLF too


def test_crc_is_ccitt_false() -> None:
    """The check value of CRC-16/CCITT-FALSE, and where the key goes: before the frame."""
    assert protocol.crc16(b"123456789") == 0x29B1
    assert protocol.checksum(">1 HB", "0123ABCD") == f"{protocol.crc16(b'0123ABCD>1 HB'):04X}"


def test_crc_catches_the_relay_transposition_xor_missed() -> None:
    """F8: `RELAY 0 1` and `RELAY 1 0` had the same XOR checksum, so a swap of two bytes on
    the line switched the other relay; their CRCs differ, and the board refuses the swap."""
    one, other = encode(">", 7, "RELAY", 0, 1), encode(">", 7, "RELAY", 1, 0)
    old_one, old_other = protocol.encode_legacy(">", 7, "RELAY", 0, 1), protocol.encode_legacy(
        ">", 7, "RELAY", 1, 0)
    assert old_one[-3:] == old_other[-3:]  # the v1 fault
    assert one[-5:] != other[-5:]
    board = idle_board(relay_count=2)
    session = opened(board)
    swapped = encode(">", 2, "RELAY", 0, 1, session=session).replace(b"0 1", b"1 0")
    reply = decode(board.handle(swapped), session)
    assert (reply.verb, reply.args[0]) == ("ERR", str(ERR_CHECKSUM))
    assert board.relays == [False, False]


@given(body=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                    min_size=2, max_size=120), data=st.data(), session=SESSION)
def test_crc_catches_any_swap_of_two_different_characters(body: str, data, session: str) -> None:
    """F8: swapping any two different characters of a frame, at any distance, changes its
    CRC (CRC-16/CCITT-FALSE's generator divides no such error pattern under 4 KB)."""
    i = data.draw(st.integers(0, len(body) - 2))
    j = data.draw(st.integers(i + 1, len(body) - 1))
    if body[i] == body[j]:
        return
    swapped = body[:i] + body[j] + body[i + 1:j] + body[i] + body[j + 1:]
    assert protocol.checksum(swapped, session) != protocol.checksum(body, session)


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


@given(data=st.binary(max_size=160) | st.text(max_size=160), hello=st.booleans())
def test_board_answers_any_line_with_a_valid_reply(data: bytes | str, hello: bool) -> None:
    board = idle_board()
    session = opened(board) if hello else None
    try:
        reply = decode(board.handle(data), session)
    except FrameError:  # the answer to a HELLO is unkeyed
        reply = decode(board.handle(data))
    assert reply.kind == protocol.REPLY and reply.verb in ("OK", "ERR")


def test_checksum_mismatch_is_error_code_1() -> None:
    board = idle_board()
    session = opened(board)
    good = encode(">", 7, "RELAY", 0, 1, session=session)
    bad = good.replace(b"RELAY 0 1", b"RELAY 0 0")
    with pytest.raises(FrameError, match="checksum mismatch") as caught:
        decode(bad, session)
    assert caught.value.code == ERR_CHECKSUM
    reply = decode(board.handle(bad), session)
    assert (reply.req_id, reply.verb, reply.args[0]) == (7, "ERR", "1")
    assert board.relays == [False]
    assert decode(board.handle(good), session) == Frame("<", 7, "OK", ("RELAY", "0", "1"))
    assert board.relays == [True]


def test_a_frame_replayed_within_the_session_is_refused() -> None:
    """F8: a recorded `RELAY 0 1` sent again after the host opened the relay used to close
    it again; now a repeated or older id is refused (ERR 5) and nothing switches."""
    board = idle_board()
    session = opened(board, req_id=1)
    close = encode(">", 5, "RELAY", 0, 1, session=session)
    assert decode(board.handle(close), session).verb == "OK"
    assert send(board, session, 6, "RELAY", 0, 0).verb == "OK"
    for replay in (close, encode(">", 6, "RELAY", 0, 1, session=session)):
        reply = decode(board.handle(replay), session)
        assert (reply.verb, reply.args[0]) == ("ERR", str(ERR_REPLAY))
    assert board.relays == [False]


def test_a_frame_from_an_earlier_session_is_refused() -> None:
    """F8: a frame recorded in one session fails its CRC in the next, even with an id the
    new session has not used yet."""
    sessions = iter(["0000AAAA", "1111BBBB"])
    board = idle_board(new_session=lambda: next(sessions))
    first = opened(board)
    recorded = encode(">", 100, "RELAY", 0, 1, session=first)
    assert decode(board.handle(recorded), first).verb == "OK"
    assert send(board, first, 101, "RELAY", 0, 0).verb == "OK"
    second = opened(board, req_id=1)  # a new bridge: ids start low again
    assert protocol.checksum(recorded[:-6].decode(), second) != recorded[-5:-1].decode()
    reply = decode(board.handle(recorded), second)
    assert (reply.req_id, reply.verb, reply.args[0]) == (100, "ERR", str(ERR_CHECKSUM))
    assert board.relays == [False]


def test_replays_do_not_feed_the_failsafe() -> None:
    """F8: a replayed heartbeat (or HELLO) proves no host is alive, so the failsafe still
    opens the relays on time."""
    now = [0.0]
    board = idle_board(failsafe_timeout=5.0, clock=lambda: now[0])
    session = opened(board)
    assert send(board, session, 2, "RELAY", 0, 1).verb == "OK"
    heartbeat = encode(">", 3, "HB", session=session)
    assert decode(board.handle(heartbeat), session).verb == "OK"
    for at in (2.0, 4.0):
        now[0] = at
        board.handle(heartbeat)
        board.handle(encode(">", 1, "HELLO"))
    session = board.session
    now[0] = 5.0
    assert board.check_failsafe() and board.relays == [False]
    assert [decode(e, session).verb for e in board.drain_events()] == ["FAILSAFE"]


def test_no_request_is_served_without_a_session() -> None:
    """Before a HELLO (power-on) nothing but HELLO is served: ERR 6, unkeyed; no events."""
    board = idle_board()
    reply = decode(board.handle(encode(">", 1, "RELAY", 0, 1)))
    assert (reply.verb, reply.args[0]) == ("ERR", str(ERR_SESSION)) and board.relays == [False]
    assert board.event("READING", "V=1") is None
    reply = decode(board.handle(encode(">", 0, "HELLO")))
    assert (reply.req_id, reply.args[0]) == (0, str(ERR_FRAME))  # id 0 names no request
    session = opened(board)
    assert decode(board.event("READING", "V=1"), session) == Frame("!", 1, "READING", ("V=1",))
    board.power_on()  # a reset forgets the session
    assert decode(board.handle(encode(">", 2, "HB", session=session))).args[0] == str(ERR_SESSION)


def test_hello_declares_version_session_and_time_factor() -> None:
    """F6/F8: HELLO names protocol 2, a fresh random session and the board's time factor."""
    board = idle_board(time_factor=60.0)
    replies = [decode(board.handle(encode(">", 1, "HELLO"))) for _ in range(2)]
    hellos = [parse_hello(r.args[1:]) for r in replies]
    assert [(h.version, h.board_id, h.time_factor) for h in hellos] == [(2, "b1", 60.0)] * 2
    assert hellos[0].session != hellos[1].session
    assert replies[0].args[-1] == "TF=60"
    assert protocol.format_time_factor(0.5) == "0.5" and protocol.format_time_factor(1) == "1"
    with pytest.raises(FrameError, match="protocol v1; this bridge needs v2"):
        parse_hello(["1", "b1", "consumer", "1"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "must start"),
        (b"HELLO*00", "must start"),
        (b">1 HELLO", "no '*'"),
        (b">1 HELLO*zzzz", "4 uppercase hex"),
        (b">1 HELLO*6D", "4 uppercase hex"),  # a v1 checksum
        (">1 HÉLLO*0000".encode(), "non-ASCII"),
        (b">1 HE\x01LO*0000", "control"),
        (with_crc(">x HELLO"), "request id"),
        (with_crc(">70000 HB"), "request id"),
        (with_crc(">1  HB"), "empty fields"),
        (with_crc(">1"), "no verb"),
        (b">1 A*B*0000", "more than one"),
        (b">1 " + b"A" * 130 + b"*0000", "longer than"),
        (with_crc(">1 HB", "0123ABCD"), "checksum mismatch"),  # keyed with another session
    ],
)
def test_malformed_lines_say_what_is_wrong(line: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode(line, "89ABCDEF")


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
    board = idle_board()
    reply = decode(board.handle(b"garbage"))
    assert (reply.req_id, reply.verb, reply.args[0]) == (0, "ERR", str(ERR_FRAME))
