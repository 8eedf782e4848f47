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
from firmware_bridge.protocol import Frame, decode, encode, parse_reading
from tests.common import wait_for

from .common import FAILSAFE_S, raw_reply


def test_hello_read_relay_round_trips(board: BoardClient) -> None:
    assert board.hello() == BoardInfo("p1", "producer", 1, 1)
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
        good = encode(">", 9, "RELAY", 0, 1)
        wrong = b"%02X" % (int(good[-3:-1], 16) ^ 0x5A)
        reply = raw_reply(port, good[:-3] + wrong + b"\n")
        assert (reply.req_id, reply.verb, reply.args[0]) == (9, "ERR", "1")
        reply = raw_reply(port, b"complete garbage\n")
        assert (reply.req_id, reply.verb, reply.args[0]) == (0, "ERR", "4")
        reply = raw_reply(port, encode(">", 10, "HELLO").replace(b"\n", b"\r\n"))
        assert reply == Frame("<", 10, "OK", ("HELLO", "1", "c1", "consumer", "1"))
        assert raw_reply(port, good) == Frame("<", 9, "OK", ("RELAY", "0", "1"))


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
        assert producer.read().wh_out > consumer.read().wh_in  # line loss
    finally:
        producer.close()
        consumer.close()


def test_failsafe_opens_relays_when_heartbeats_stop(devices: dict[str, str]) -> None:
    events: queue.Queue[Frame] = queue.Queue()
    client = BoardClient(devices["p1"], on_event=events.put)
    try:
        client.set_relay(0, True)
        started = time.monotonic()
        while True:  # silence: only listen
            frame = events.get(timeout=3 * FAILSAFE_S)
            if frame.verb == "FAILSAFE":
                break
            if frame.verb == "READING" and time.monotonic() - started < FAILSAFE_S * 0.8:
                assert parse_reading(frame.args).relays == (True,)
        assert time.monotonic() - started >= FAILSAFE_S * 0.9
        assert frame == Frame("!", 0, "FAILSAFE")
        assert client.read().relays == (False,)
    finally:
        client.close()


def test_client_times_out_and_survives_a_babbling_board() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    client = BoardClient(os.ttyname(slave), timeout=0.3)
    try:
        with pytest.raises(BoardTimeout):
            client.heartbeat()  # nobody answers
        os.read(master, 200)  # the unanswered request

        def babble() -> None:
            request = decode(os.read(master, 200).split(b"\n")[0])
            os.write(master, b"\xff\xfe binary junk\n<1 OK*99\n" + b"x" * 600 + b"\n")
            os.write(master, encode("<", request.req_id, "OK", "HB"))

        helper = threading.Thread(target=babble)
        helper.start()
        client.heartbeat()  # the good reply still gets through
        helper.join()
        assert client.connected
    finally:
        client.close()
        os.close(master)
        os.close(slave)


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
