"""Which bridge serves this machine's boards (LOCAL_BRIDGE), and the emulator:// URIs it gets."""

from __future__ import annotations

import pytest

from firmware_bridge.board_uri import parse_board_uri
from web.runtime.local_bridge import board_uris, mode

PORTAL = {"LOCAL_BRIDGE_PORTAL": "http://127.0.0.1:5000"}


@pytest.mark.parametrize(("config", "expected"), [
    ({}, "inline"),  # a portal that does not know its own URL (tests, in-process runtimes)
    (PORTAL, "process"),
    # Several workers: one of them runs the child (the local bridge lease), not each its own.
    ({**PORTAL, "MESSAGE_QUEUE": "redis://127.0.0.1:6379/0"}, "process"),
    ({**PORTAL, "EMULATOR_STEPPED": True}, "inline"),  # a driver steps the emulator here
    ({**PORTAL, "LOCAL_BRIDGE": "inline"}, "inline"),
    ({**PORTAL, "MESSAGE_QUEUE": "redis://x", "LOCAL_BRIDGE": "inline"}, "inline"),
])
def test_the_mode(config, expected):
    assert mode(config) == expected


@pytest.mark.parametrize(("config", "why"), [
    ({"LOCAL_BRIDGE": "elsewhere"}, "inline or process"),
    ({"LOCAL_BRIDGE": "process"}, "needs LOCAL_BRIDGE_PORTAL"),
    ({**PORTAL, "LOCAL_BRIDGE": "process", "EMULATOR_STEPPED": True}, "EMULATOR_STEPPED"),
])
def test_a_mode_that_cannot_work_says_why(config, why):
    with pytest.raises(ValueError, match=why):
        mode(config)


def test_each_participant_becomes_an_emulator_uri_on_the_portals_clock():
    config = {"EMULATOR_SPEED": 600, "EMULATOR_START_HOUR": 25.5, "PV_PEAK_W": 400,
              "EMULATOR_SKY": "clouds", "LOAD_W": 240}
    specs = [{"board": "pv-alice", "role": "producer"},
             {"board": "load-bob", "role": "consumer", "load_w": 10}]
    pv, load = (parse_board_uri(u) for u in board_uris(specs, config))
    assert (pv.board_id, pv.options) == ("pv-alice", {
        "kind": "producer", "sky": "clouds", "speed": 600.0, "start_hour": 1.5,
        "pv_peak_w": 400.0})
    assert (load.board_id, load.options["load_w"], load.options["speed"]) == ("load-bob", 10.0,
                                                                              600.0)
