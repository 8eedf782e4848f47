"""What a party with access to the workers' Redis can do on the board bus, done as it would:
raw JSON published on the bus's channel with its own Redis client, next to a real bridge's
claim and readings (docs/SECURITY.md, threats 73-75).

A reading signed by any key but the board's registered meter is refused by every worker; a
forged claim or a forged plain reading is not (yet): those tests are strict xfails, so they
fail the day a worker starts refusing them and the threats can be marked handled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from eth_account import Account

from firmware_bridge.board_bus import CHANNEL, RedisBus
from firmware_bridge.remote_boards import RemoteBoards
from firmware_bridge.signing import sign_reading
from tests.common import wait_for
from tests.firmware_bridge.test_board_bus import DOMAIN, GOOD, METER, Link, hello

ATTACKER = Account.create()  # a key the attacker holds: not the board's registered meter


class Bus:
    """Worker A (the bridge's), worker B (the settler's) over one real Redis, the bridge's
    claim applied on both, and the attacker's own Redis client beside them."""

    def __init__(self, url: str) -> None:
        import redis

        self.buses = [RedisBus(url), RedisBus(url)]
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

    def inject(self, message: dict) -> None:
        """Publish message on the bus as the attacker, then a marker B must see after it."""
        self.attacker.publish(CHANNEL, json.dumps(message))
        marker = f"m{time.monotonic_ns()}"
        # An empty claim changes no board; B has applied everything before it once it has
        # heard of the marker's peer (one connection's messages arrive in order).
        self.attacker.publish(CHANNEL, json.dumps(
            {"t": "claim", "w": "Z", "peer": marker, "since": 0, "boards": []}))
        wait_for(lambda: marker in self.b.heard, timeout=10, what="the attacker's messages")

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


@pytest.mark.xfail(strict=True, reason="open (threat 73): a worker applies any claim the bus "
                   "carries; only the worker the bridge is connected to checks its registration")
def test_a_forged_claim_injected_on_the_bus_is_refused(bus: Bus):
    bus.inject({"t": "claim", "w": "Z", "peer": "attacker-sid", "bridge": "site",
                "since": time.time() + 10 ** 6,  # newer than any honest repeat will be
                "boards": [{"board_id": "x", "kind": "consumer",
                            "meter": ATTACKER.address}]})
    bus.a.refresh()  # the real bridge's worker repeats its claim, as every second
    bus.inject({"t": "noop"})
    assert bus.b.sid.get("x") == "sid-1", "B sends x's relay commands to the attacker's peer"
    assert bus.b.boards["x"].meter == METER.address, "B takes the attacker's key as x's meter"

@pytest.mark.xfail(strict=True, reason="open (threat 74): plain readings are unsigned; one "
                   "forged on the bus with a state of charge of 0 is kept by every worker")
def test_a_forged_plain_reading_injected_on_the_bus_is_refused(bus: Bus):
    bus.honest_reading(10.0)
    wait_for(lambda: getattr(bus.b.reading("x"), "wh_in", None) == 10.0, timeout=10,
             what="the honest reading on B")
    bus.inject({"t": "reading", "w": "Z", "peer": "sid-1",
                "data": {"board_id": "x", "reading": {**GOOD, "wh_in": 10 ** 6, "soc": 0.0}}})
    assert bus.b.reading("x").wh_in == 10.0 and bus.b.reading("x").soc is None
