"""What a party with access to the workers' Redis can do on the board bus, done as it would:
raw JSON published on the bus's channel with its own Redis client, next to a real bridge's
claim and readings (docs/SECURITY.md, threats 73-75).

Every worker's RedisBus signs its messages under a key derived from the secret the workers
share, which the attacker does not know: a claim, plain reading or goodbye it forges, one it
signs under another key, and a worker's own signed message it replays, after MAX_AGE_S or
within it, are dropped; a reading signed by any key but the board's registered meter is
refused as well.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from eth_account import Account

from firmware_bridge import board_bus
from firmware_bridge.board_bus import CHANNEL, RedisBus, bus_key
from firmware_bridge.remote_boards import RemoteBoards
from firmware_bridge.sealing import seal
from firmware_bridge.signing import sign_reading
from tests.common import wait_for
from tests.firmware_bridge.test_board_bus import DOMAIN, GOOD, KEY, METER, Link, hello

ATTACKER = Account.create()  # a key the attacker holds: not the board's registered meter


class Bus:
    """Worker A (the bridge's), worker B (the settler's) over one real Redis, the bridge's
    claim applied on both, and the attacker's own Redis client beside them."""

    def __init__(self, url: str) -> None:
        import redis

        self.buses = [RedisBus(url, key=KEY), RedisBus(url, key=KEY)]
        for bus in self.buses:
            assert bus.wait_subscribed(10), "the board bus did not subscribe"
        self.link = Link()
        self.a = RemoteBoards([], self.link, bus=self.buses[0], worker="A")
        self.b = RemoteBoards([], self.link, bus=self.buses[1], worker="B")
        for worker in (self.a, self.b):
            worker.set_reading_domain(DOMAIN)
        self.a.admit("sid-1", "site", {"x": METER.address})
        self.a.announce("sid-1", hello())
        wait_for(lambda: self.b.online("x"), timeout=10, what="the bridge's claim on B")
        self.attacker = redis.Redis.from_url(url)

    def inject(self, message: dict | str | bytes) -> None:
        """Publish message on the bus as the attacker, then a marker B must see after it."""
        self.attacker.publish(CHANNEL, message if isinstance(message, (str, bytes))
                              else json.dumps(message))
        marker = f"m{time.monotonic_ns()}"
        # An empty claim, signed by worker A's bus, changes no board; each worker has applied all
        # before it once it has heard of the marker's peer (Redis delivers to a subscriber in
        # the order it ran the publishes, and the attacker's had returned).
        self.buses[0].publish({"t": "claim", "w": "Z", "peer": marker, "since": 0,
                               "boards": []})
        # Both workers: A hears the attacker's text on its own subscription, as B does.
        wait_for(lambda: marker in self.a.heard and marker in self.b.heard, timeout=10,
                 what="the attacker's messages on both workers")

    def honest_reading(self, wh_in: float) -> None:
        """The real bridge reports through A, signed by the board's meter."""
        signed = sign_reading(METER, DOMAIN, wh_in, 2, int(time.time())).to_json()
        self.a.report("sid-1", {"board_id": "x", "reading": {**GOOD, "wh_in": wh_in},
                                "signed": signed})

    def close(self) -> None:
        self.attacker.close()
        for bus in self.buses:
            bus.close()


@pytest.fixture
def bus(redis_url: str) -> Iterator[Bus]:
    """The two workers and the attacker on a real Redis, closed even when a test fails."""
    setup = Bus(redis_url)
    try:
        yield setup
    finally:
        setup.close()


def test_a_reading_signed_by_another_key_injected_on_the_bus_is_refused(bus: Bus):
    bus.honest_reading(10.0)
    wait_for(lambda: getattr(bus.b.signed_reading("x"), "wh_in", None) == 10, timeout=10,
             what="the honest signed reading on B")
    forged = sign_reading(ATTACKER, DOMAIN, 5_000, 2, int(time.time()) + 1).to_json()
    bus.inject({"t": "reading", "w": "Z", "peer": "sid-1",
                "data": {"board_id": "x", "reading": {**GOOD, "wh_in": 11.0},
                         "signed": {**forged, "meter": METER.address}}})
    bus.inject({"t": "reading", "w": "Z", "peer": "sid-1",
                "data": {"board_id": "x", "reading": {**GOOD, "wh_in": 12.0},
                         "signed": forged}})
    for worker in (bus.a, bus.b):  # the meter's word is unchanged on every worker
        assert worker.signed_reading("x").wh_in == 10
        assert worker.signed_reading("x").meter == METER.address
    bus.honest_reading(13.0)  # and the meter's next reading is still taken
    wait_for(lambda: getattr(bus.b.signed_reading("x"), "wh_in", None) == 13, timeout=10,
             what="the next honest signed reading on B")


def test_a_forged_claim_injected_on_the_bus_is_refused(bus: Bus):
    bus.inject({"t": "claim", "w": "Z", "peer": "attacker-sid", "bridge": "site",
                "since": time.time() + 10 ** 6,  # newer than any honest repeat will be
                "boards": [{"board_id": "x", "kind": "consumer",
                            "meter": ATTACKER.address}]})
    bus.a.refresh()  # the real bridge's worker repeats its claim, as every second
    bus.inject({"t": "noop"})
    assert bus.b.sid.get("x") == "sid-1", "B sends x's relay commands to the attacker's peer"
    assert bus.b.boards["x"].meter == METER.address, "B takes the attacker's key as x's meter"


def test_a_forged_plain_reading_injected_on_the_bus_is_refused(bus: Bus):
    bus.honest_reading(10.0)
    wait_for(lambda: getattr(bus.b.reading("x"), "wh_in", None) == 10.0, timeout=10,
             what="the honest reading on B")
    bus.inject({"t": "reading", "w": "Z", "peer": "sid-1",
                "data": {"board_id": "x", "reading": {**GOOD, "wh_in": 10 ** 6, "soc": 0.0}}})
    assert bus.b.reading("x").wh_in == 10.0 and bus.b.reading("x").soc is None


def test_a_forged_goodbye_and_forget_are_dropped(bus: Bus):
    bus.inject({"t": "gone", "w": "A", "peer": "sid-1"})
    bus.inject({"t": "forget", "w": "Z", "boards": ["x"]})
    assert bus.b.online("x") and bus.a.online("x") and bus.a.admitted("sid-1")


def _signed(key: bytes, message: dict, sent: float) -> str:
    """A bus text as a RedisBus under key would have published it at time sent."""
    return json.dumps(seal(key, CHANNEL, message, sent))


def test_a_message_signed_under_another_key_or_replayed_late_is_dropped(bus: Bus, caplog):
    caplog.set_level(logging.WARNING, logger=board_bus.__name__)
    now = time.time()
    bus.inject(_signed(bus_key("a guessed secret"), {"t": "gone", "w": "K", "peer": "sid-1"},
                       now))
    bus.inject(_signed(KEY, {"t": "gone", "w": "L", "peer": "sid-1"},
                       now - board_bus.MAX_AGE_S - 5))  # recorded earlier, replayed now
    bus.inject(_signed(KEY, {"t": "gone", "w": "M", "peer": "sid-1"},
                       now + board_bus.MAX_AGE_S + 5))  # dated ahead
    assert bus.b.online("x") and bus.a.online("x")
    lines = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    for sender, why in (("K", "tag is missing or wrong"), ("L", "s ago (a replay?)"),
                        ("M", "s ago (a replay?)")):  # on each of the two workers' buses
        assert sum(f"'{sender}': " in line and why in line for line in lines) == 2, lines
    bus.inject(_signed(KEY, {"t": "gone", "w": "M", "peer": "sid-1"}, time.time()))
    wait_for(lambda: not bus.b.online("x"), timeout=10, what="the same goodbye, fresh")


def test_drops_are_logged_once_per_sender_in_a_while(bus: Bus, caplog):
    caplog.set_level(logging.WARNING, logger=board_bus.__name__)
    for _ in range(3):
        bus.inject({"t": "gone", "w": "Z", "peer": "sid-1"})
    bus.inject({"t": "gone", "w": "Y", "peer": "sid-1"})
    bus.inject("no tag, not JSON")
    lines = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    assert len(lines) == 6, lines  # Z, Y and "?" once on each of the two workers' buses
    assert sum("'Z': " in line for line in lines) == 2
    assert bus.b.online("x")


def test_an_honest_message_replayed_within_the_window_is_dropped(bus: Bus, caplog, redis_url):
    import redis

    caplog.set_level(logging.WARNING, logger=board_bus.__name__)
    listener = redis.Redis.from_url(redis_url).pubsub()
    try:
        listener.subscribe(CHANNEL)
        wait_for(lambda: (listener.get_message(timeout=0.1) or {}).get("type") == "subscribe",
                 timeout=10, what="the attacker's subscription")
        bus.a.refresh()  # the attacker records A's honest claim for x, repeated as every second
        recorded = _recorded(listener, "claim")
    finally:
        listener.close()
    bus.a.disconnect("sid-1")  # then the bridge goes away: x is offline on every worker
    wait_for(lambda: not bus.b.online("x"), timeout=10, what="the goodbye on B")
    bus.inject(recorded)  # seconds later, well within MAX_AGE_S
    assert not bus.b.online("x"), "B takes the replayed claim: x online through a gone peer"
    lines = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    assert sum("'A': " in line and "(a replay)" in line for line in lines) == 2, lines


def _recorded(listener, kind: str) -> bytes:
    """The text of the first honest message of this kind the attacker's client saw."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = listener.get_message(timeout=1.0)
        if item is None or item["type"] != "message":
            continue
        if json.loads(json.loads(item["data"])["body"])["m"].get("t") == kind:
            return item["data"]
    raise AssertionError(f"no honest {kind} crossed the bus")
