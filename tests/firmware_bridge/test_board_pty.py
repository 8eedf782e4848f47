"""A BoardClient talking to emulated boards over real ptys with pyserial."""

from __future__ import annotations

import os
import queue
import threading
import time
import tty

import pytest
import serial

from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BoardError, BoardTimeout, BridgeError
from firmware_bridge.protocol import Frame, Hello, decode, encode, hello_fields, parse_reading
from tests.common import wait_for

from .common import FAILSAFE_S, raw_hello, raw_reply, wrong_crc


def test_hello_read_relay_round_trips(board: BoardClient) -> None:
    """F6: an emulated board declares the microgrid's speed (600) as its time factor."""
    assert board.hello() == BoardInfo("p1", "producer", 1, 2, 600.0)
    before = board.read()
    assert before.relays == (False,)
    assert before.soc is not None and 0.0 <= before.soc <= 1.0
    assert before.pv_w is not None and before.pv_w > 0  # noon on a producer
    assert 11.8 <= before.voltage_v <= 13.0
    board.set_relay(0, True)
    assert board.read().relays == (True,)
    board.set_relay(0, False)
    assert board.read().relays == (False,)
    board.heartbeat()


def test_bad_checksum_gets_err_1_and_the_board_keeps_working(devices: dict[str, str]) -> None:
    with serial.Serial(devices["c1"], 115200, timeout=1.0) as port:
        port.reset_input_buffer()
        session = raw_hello(port, 8)
        good = encode(">", 9, "RELAY", 0, 1, session=session)
        reply = raw_reply(port, wrong_crc(good), session)
        assert (reply.req_id, reply.verb, reply.args[0]) == (9, "ERR", "1")
        reply = raw_reply(port, b"complete garbage\n", session)
        assert (reply.req_id, reply.verb, reply.args[0]) == (0, "ERR", "4")
        reply = raw_reply(port, encode(">", 10, "HELLO").replace(b"\n", b"\r\n"))
        fresh = reply.args[5].removeprefix("SESSION=")
        assert reply == Frame("<", 10, "OK", ("HELLO", "2", "c1", "consumer", "1",
                                              f"SESSION={fresh}", "TF=600"))
        assert fresh != session  # a session per HELLO
        good = encode(">", 11, "RELAY", 0, 1, session=fresh)
        assert raw_reply(port, good, fresh) == Frame("<", 11, "OK", ("RELAY", "0", "1"))


def test_unknown_verb_and_bad_argument_are_board_errors(board: BoardClient) -> None:
    with pytest.raises(BoardError) as unknown:
        board.request("FLY")
    assert unknown.value.code == 2
    with pytest.raises(BoardError) as bad_relay:
        board.set_relay(3, True)
    assert bad_relay.value.code == 3
    assert board.hello().board_id == "p1"


def test_consumer_meter_counts_while_both_relays_are_closed(devices: dict[str, str]) -> None:
    producer = BoardClient(devices["p1"])
    consumer = BoardClient(devices["c1"])
    try:
        consumer.set_relay(0, True)
        start = consumer.read().wh_in
        time.sleep(0.3)
        assert consumer.read().wh_in == start  # no producer on the bus yet
        producer.set_relay(0, True)
        wait_for(lambda: consumer.read().wh_in > start + 5, what="consumer WHIN to rise")
        # Line loss: what the producer put out exceeds what the consumer took in. Read in
        # this order, the producer's counter is read after the consumer's: at 600x a gap of
        # 50 ms between the two reads is 30 s of the other way round, as a loaded run saw.
        drawn = consumer.read().wh_in
        assert producer.read().wh_out > drawn
    finally:
        producer.close()
        consumer.close()


def test_failsafe_opens_relays_when_heartbeats_stop(devices: dict[str, str]) -> None:
    events: queue.Queue[Frame] = queue.Queue()
    client = BoardClient(devices["p1"], on_event=events.put)
    try:
        client.set_relay(0, True)
        started = time.monotonic()
        while not events.empty():  # lines sent before the RELAY reply show the old state
            events.get_nowait()
        while True:  # silence: only listen
            frame = events.get(timeout=3 * FAILSAFE_S)
            if frame.verb == "FAILSAFE":
                break
            if frame.verb == "READING" and time.monotonic() - started < FAILSAFE_S * 0.8:
                assert parse_reading(frame.args).relays == (True,)
        assert time.monotonic() - started >= FAILSAFE_S * 0.9
        assert (frame.verb, frame.args) == ("FAILSAFE", ()) and frame.req_id > 1
        assert client.read().relays == (False,)
    finally:
        client.close()


class FakeBoard:
    """A pty whose far end the test speaks for, frame by frame (a board that lies or babbles,
    which no real board or emulator would do)."""

    SESSION = "0123ABCD"

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)
        self.pending = b""

    def request(self) -> Frame:
        """The next request line the client sent (checked under the fake's session)."""
        while b"\n" not in self.pending:
            self.pending += os.read(self.master, 200)
        line, self.pending = self.pending.split(b"\n", 1)
        return decode(line, self.SESSION)

    def send(self, *lines: bytes) -> None:
        """Raw lines to the client."""
        os.write(self.master, b"".join(lines))

    def answer_hello(self) -> None:
        """Take the client's HELLO and open the fake's session."""
        hello = self.request()
        assert hello.verb == "HELLO"
        fields = hello_fields(Hello(2, "b1", "consumer", 1, self.SESSION, 1.0))
        self.send(encode("<", hello.req_id, "OK", "HELLO", *fields))

    def reply(self, req_id: int, *words: object) -> bytes:
        """A reply line keyed with the fake's session."""
        return encode("<", req_id, *words, session=self.SESSION)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_client_times_out_and_survives_a_babbling_board() -> None:
    board = FakeBoard()
    client = BoardClient(board.device, timeout=0.3, hello_tries=1)  # one HELLO, not DTR retries
    try:
        with pytest.raises(BoardTimeout):
            client.heartbeat()  # nobody answers its HELLO
        board.request()  # the unanswered HELLO

        def babble() -> None:
            board.answer_hello()
            request = board.request()
            board.send(b"\xff\xfe binary junk\n<1 OK*9999\n" + b"x" * 600 + b"\n")
            board.send(board.reply(request.req_id, "OK", "HB"))

        helper = threading.Thread(target=babble)
        helper.start()
        client.heartbeat()  # the good reply still gets through
        helper.join()
        assert client.connected
    finally:
        client.close()
        board.close()


def test_a_reply_with_id_0_or_another_id_satisfies_nothing() -> None:
    """F8: a forged or late `<0 OK` (or a reply to an earlier request) does not complete
    the request in flight; only the reply with its own id does."""
    board = FakeBoard()
    client = BoardClient(board.device, timeout=0.3)
    try:
        helper = threading.Thread(target=board.answer_hello)
        helper.start()
        assert client.hello().board_id == "b1"
        helper.join()

        def forge() -> None:
            request = board.request()
            board.send(board.reply(0, "OK", "HB"), board.reply(request.req_id - 1, "OK", "HB"),
                       board.reply(request.req_id + 1, "OK", "HB"))

        helper = threading.Thread(target=forge)
        helper.start()
        with pytest.raises(BoardTimeout):
            client.heartbeat()
        helper.join()
    finally:
        client.close()
        board.close()


def test_replayed_and_foreign_events_are_refused() -> None:
    """F8: an event repeated (or older) within the session, or one from another session,
    never reaches the bridge; fresh ones do."""
    board = FakeBoard()
    events: queue.Queue[Frame] = queue.Queue()
    client = BoardClient(board.device, timeout=1.0, on_event=events.put)
    try:
        helper = threading.Thread(target=board.answer_hello)
        helper.start()
        client.hello()
        helper.join()
        fresh = encode("!", 3, "EXHAUSTED", 0, session=board.SESSION)
        older = encode("!", 2, "FAILSAFE", session=board.SESSION)
        foreign = encode("!", 9, "FAILSAFE", session="FFFF0000")
        newest = encode("!", 4, "EXHAUSTED", 1, session=board.SESSION)
        board.send(fresh, fresh, older, foreign, newest)
        assert events.get(timeout=1.0) == Frame("!", 3, "EXHAUSTED", ("0",))
        assert events.get(timeout=1.0) == Frame("!", 4, "EXHAUSTED", ("1",))
        assert events.empty()
    finally:
        client.close()
        board.close()


def test_a_v1_board_is_refused_at_hello_in_words() -> None:
    """F8: a board that speaks protocol v1 (XOR checksums) is refused with a clear error
    instead of half-working; the stand-in answers as v1 firmware does."""
    board = FakeBoard()
    client = BoardClient(board.device, timeout=1.0)
    try:
        def v1_board() -> None:
            raw = b""
            while b"\n" not in raw:
                raw += os.read(board.master, 200)
            req_id = int(raw[1:raw.index(b" ")])
            body = f"<{req_id} ERR 1 checksum-is-not-two-uppercase-hex-digits"
            xor = 0
            for byte in body.encode():
                xor ^= byte
            board.send(f"{body}*{xor:02X}\n".encode())

        helper = threading.Thread(target=v1_board)
        helper.start()
        with pytest.raises(BridgeError, match="board speaks protocol v1; this bridge needs v2"):
            client.hello()
        helper.join()
    finally:
        client.close()
        board.close()


def test_a_v1_host_is_told_this_board_speaks_v2(grid: Microgrid, devices: dict[str, str]) -> None:
    """F8: a v1 bridge's HELLO gets a v1-framed answer naming version 2, which v1 bridges
    refuse in words; no session opens and nothing else of v1 is understood."""
    from firmware_bridge.protocol import decode_legacy, encode_legacy

    with serial.Serial(devices["c1"], 115200, timeout=1.0) as port:
        port.write(encode_legacy(">", 1, "HELLO"))
        assert decode_legacy(port.readline()) == Frame(
            "<", 1, "OK", ("HELLO", "2", "c1", "consumer", "1"))
        reply = raw_reply(port, encode_legacy(">", 2, "RELAY", 0, 1))
        assert (reply.verb, reply.args[0]) == ("ERR", "1")  # a v1 checksum: nothing switched
    assert grid.reading("c1").relays == (False,)


def test_unplugged_board_fails_requests_cleanly() -> None:
    grid = Microgrid(failsafe_timeout=FAILSAFE_S)
    grid.add_consumer("c9")
    client = BoardClient(grid.start()["c9"], timeout=0.5)
    assert client.hello().board_id == "c9"
    grid.stop()  # the board is unplugged
    wait_for(lambda: not client.connected, what="the client to notice the lost port")
    with pytest.raises(BridgeError, match="closed"):
        client.heartbeat()
    client.close()
