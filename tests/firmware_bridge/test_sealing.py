"""The sealing both Redis channels share (firmware_bridge/sealing.py): keys per channel,
envelopes bound to their channel, a message taken once while fresh, drops logged in a while."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from firmware_bridge import sealing
from firmware_bridge.board_bus import bus_key
from firmware_bridge.sealing import MAX_AGE_S, SealedChannel, claimed_sender, seal
from web.signed_queue import queue_key

KEY = bus_key("the workers' shared secret")
NOW = 1_700_000_000.0


def test_each_channel_keeps_its_own_key_with_its_old_value():
    for derive, purpose in ((bus_key, b"gridbid board bus"),
                            (queue_key, b"gridbid socketio queue")):
        assert derive("s") == hmac.new(b"s", purpose, hashlib.sha256).digest() == derive(b"s")
    assert bus_key("s") != queue_key("s")


def test_a_message_is_taken_once_while_fresh_then_refused_as_stale(caplog):
    caplog.set_level(logging.WARNING, logger=sealing.__name__)
    channel = SealedChannel(KEY, "c", name="test channel", sender="w")
    text = json.dumps(channel.seal({"t": "claim", "w": "A"}, NOW))
    assert channel.admit(text, NOW) == {"t": "claim", "w": "A"}
    assert channel.admit(text, NOW + MAX_AGE_S) is None  # a replay, still fresh
    assert channel.admit(text, NOW + MAX_AGE_S + 1) is None  # stale: its tag is forgotten
    ahead = json.dumps(channel.seal({"t": "gone", "w": "B"}, NOW + 40))  # a clock ahead
    assert channel.admit(ahead, NOW + 11 + MAX_AGE_S) == {"t": "gone", "w": "B"}
    assert len(channel.seen) == 1  # the first message's tag is forgotten
    assert channel.admit(ahead, NOW + 40 + MAX_AGE_S) is None  # kept while fresh
    lines = [r.getMessage() for r in caplog.records]  # A's stale text within A's minute
    assert len(lines) == 2 and all("it was taken already (a replay)" in line for line in lines)
    assert lines[0].startswith("test channel: dropped a message from 'A'") and "'B'" in lines[1]


def test_a_sealed_message_is_bound_to_its_channel_and_key():
    text = json.dumps(seal(KEY, "board bus", {"t": "gone", "w": "A"}, NOW))
    for channel in (SealedChannel(KEY, "another", name="x", sender="w"),
                    SealedChannel(queue_key("the workers' shared secret"), "board bus",
                                  name="x", sender="w")):
        assert channel.admit(text, NOW) is None
    assert SealedChannel(KEY, "board bus", name="x", sender="w").admit(text, NOW) is not None
    assert claimed_sender(text, "w") == "A" == claimed_sender('{"w": "A"}', "w")
    assert claimed_sender(b"\x80", "w") == "?" == claimed_sender(text, "host_id")
