"""Board URIs: each scheme parsed to what it names, every bad one a clear BoardURIError, and
emulator:// boards attached through a bridge that runs their emulator itself."""

from __future__ import annotations

import pytest

from firmware_bridge.board_uri import BoardURIError, parse_board_uri
from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import BridgeError
from tests.common import wait_for


def test_each_scheme_names_its_board():
    emulated = parse_board_uri("emulator://pv-alice?kind=producer&pv_peak_w=500&speed=600")
    assert (emulated.scheme, emulated.board_id) == ("emulator", "pv-alice")
    assert emulated.options == {"kind": "producer", "sky": "clear", "pv_peak_w": 500.0,
                                "speed": 600.0}
    assert parse_board_uri("/dev/ttyUSB0").scheme == "serial"
    assert parse_board_uri("var/boards/pv-alice").target == "var/boards/pv-alice"
    tcp = parse_board_uri("socket://127.0.0.1:7000")
    assert (tcp.scheme, tcp.target, tcp.board_id) == ("serial", "socket://127.0.0.1:7000", None)
    meter = parse_board_uri("pzem:///dev/ttyUSB1?unit=1")
    assert (meter.scheme, meter.target, meter.board_id) == ("pzem", "/dev/ttyUSB1",
                                                            "pzem-ttyUSB1-1")
    assert meter.options["kind"] == "consumer" and meter.options["counts"] == "in"
    named = parse_board_uri("pzem:///dev/ttyUSB1?unit=7&id=pv-bob&kind=producer&counts=out")
    assert (named.board_id, named.options["unit"], named.options["counts"]) == ("pv-bob", 7,
                                                                               "out")


@pytest.mark.parametrize(("uri", "why"), [
    ("", "non-empty"),
    (None, "non-empty"),
    ("ftp://host/board", "unknown scheme ftp://"),
    ("emulator://pv-1", "kind is producer or consumer"),
    ("emulator://pv-1?kind=solar", "kind is producer or consumer"),
    ("emulator://?kind=producer", "id ''"),
    ("emulator://pv 1?kind=producer", "id 'pv 1'"),
    ("emulator://pv-1/x?kind=producer", "no path"),
    ("emulator://pv-1?kind=producer&pv_peak_w=lots", "is not a number"),
    ("emulator://pv-1?kind=producer&pv_peak_w=nan", "not within"),
    ("emulator://pv-1?kind=producer&speed=0", "not within 1..10000"),
    ("emulator://pv-1?kind=producer&colour=red", "unknown option 'colour'"),
    ("emulator://pv-1?kind=producer&kind=consumer", "given twice"),
    ("emulator://load-1?kind=consumer&pv_peak_w=400", "pv_peak_w is for producers"),
    ("emulator://pv-1?kind=producer&load_w=10", "load_w is for consumers"),
    ("emulator://pv-1?kind=producer&sky=rain", "sky is clear or clouds"),
    ("pzem://host/dev/ttyUSB1", "three slashes"),
    ("pzem:///dev/ttyUSB1?unit=0", "unit '0'"),
    ("pzem:///dev/ttyUSB1?unit=x", "unit 'x'"),
    ("pzem:///dev/ttyUSB1?counts=both", "counts is in or out"),
    ("pzem:///dev/ttyUSB1?baud=12", "not within 1200..115200"),
    ("pzem:///dev/ttyUSB1?relays=1", "unknown option 'relays'"),
])
def test_a_bad_uri_says_what_is_wrong(uri, why):
    with pytest.raises(BoardURIError, match=why) as caught:
        parse_board_uri(uri)
    assert isinstance(caught.value, BridgeError) and isinstance(caught.value, ValueError)


def test_a_bridge_runs_its_emulated_boards_and_serves_them():
    bridge = Bridge(heartbeat_s=0.2)
    try:
        infos = bridge.attach_all(["emulator://pv-1?kind=producer&speed=120",
                                   "emulator://load-1?kind=consumer&load_w=100&speed=120"])
        assert {(i.board_id, i.kind, i.time_factor) for i in infos} == {
            ("pv-1", "producer", 120.0), ("load-1", "consumer", 120.0)}
        bridge.set_relay("pv-1", True)
        bridge.set_relay("load-1", True)
        # One bus joins them: what the load draws, the producer gives.
        wait_for(lambda: bridge.read("load-1").wh_in > 0.05, timeout=20,
                 what="the emulated load to draw from the emulated producer")
        assert bridge.read("pv-1").wh_out > 0
    finally:
        bridge.close()


def test_emulated_boards_of_one_bridge_share_one_clock():
    bridge = Bridge()
    try:
        with pytest.raises(BoardURIError, match="share one clock: speed is 60, 600"):
            bridge.attach_all(["emulator://pv-1?kind=producer&speed=60",
                               "emulator://load-1?kind=consumer&speed=600"])
        with pytest.raises(BoardURIError, match="unknown scheme"):  # before anything opens
            bridge.attach_all(["emulator://pv-2?kind=producer", "nope://x"])
        assert bridge.boards() == {}
    finally:
        bridge.close()
