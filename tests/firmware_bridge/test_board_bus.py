"""Two portal workers' views of one bridge: what it tells worker A (the one it is connected
to) reaches worker B through the board bus, in process (LocalBus) and over a real Redis
(RedisBus); B commands it through A's connection, and stops trusting it when A goes quiet."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from firmware_bridge import remote_boards as module
from firmware_bridge.board_bus import LocalBus, RedisBus, bus_for, bus_key
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_boards import STALE_S, RemoteBoards
from firmware_bridge.signing import ReadingDomain, sign_reading
from tests.common import wait_for

METER = Account.create()
KEY = bus_key("the workers' shared secret")  # what the wiring derives from SECRET_KEY
DOMAIN = ReadingDomain(1337, Account.create().address)
GOOD = {"voltage_v": 12.1, "current_a": 0.5, "power_w": 6.0, "wh_in": 10.0, "wh_out": 2.0,
        "relays": [True], "soc": None, "pv_w": None, "uptime_s": 3.0, "budgets": [None]}


class Link:
    """A transport that records which peer each command went to and answers ok."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def __call__(self, peer: str, command: dict, timeout: float) -> dict:
        self.sent.append((peer, command))
        return {"ok": True}


def workers(bus_a, bus_b) -> tuple[RemoteBoards, RemoteBoards, Link]:
    """Worker A (the bridge's) and worker B (the settler's), sharing the bus."""
    link = Link()
    a = RemoteBoards([], link, bus=bus_a, worker="A")
    b = RemoteBoards([], link, bus=bus_b, worker="B")
    for worker in (a, b):
        worker.set_reading_domain(DOMAIN)
    a.admit("sid-1", "site", {"x": METER.address})
    return a, b, link


def hello(board: str = "x") -> list[dict]:
    return [{"board_id": board, "kind": "consumer", "meter": METER.address}]


def report(worker: RemoteBoards, peer: str, wh_in: float, at: int) -> None:
    signed = sign_reading(METER, DOMAIN, wh_in, 2, at).to_json()
    worker.report(peer, {"board_id": "x", "reading": {**GOOD, "wh_in": wh_in},
                         "signed": signed})


def test_what_a_bridge_tells_one_worker_every_worker_knows():
    bus = LocalBus()
    a, b, link = workers(bus, bus)
    seated = []
    b.subscribe_claims(seated.append)
    a.announce("sid-1", hello())
    assert b.online("x") and b.sid == {"x": "sid-1"} and [s.board_id for s in seated] == ["x"]
    now = int(time.time())
    report(a, "sid-1", 11.0, now)
    assert b.read("x").wh_in == 11.0 and b.signed_reading("x").wh_in == 11.0
    report(a, "sid-1", 9.0, now + 1)  # going back: refused by every worker alike
    assert b.read("x").wh_in == 11.0 and a.read("x").wh_in == 11.0
    b.set_relay("x", True)  # the settler's command goes to the bridge's connection on A
    wait_for(lambda: b.sent("x"), timeout=10, what="the relay command")
    assert link.sent == [("sid-1", {"board_id": "x", "action": "set_relay", "relay": 0,
                                    "on": True})]
    a.disconnect("sid-1")
    assert not b.online("x")
    with pytest.raises(BridgeError, match="offline"):
        b.set_relay("x", False)


def test_a_worker_that_goes_quiet_takes_its_bridges_boards_offline(monkeypatch):
    bus = LocalBus()
    a, b, _ = workers(bus, bus)
    a.announce("sid-1", hello())
    assert b.online("x")
    later = time.monotonic() + STALE_S + 1  # A died: its claims stopped coming
    monkeypatch.setattr(module.time, "monotonic", lambda: later)
    assert not b.online("x") and a.online("x")
    a.refresh()  # … or they come again
    assert b.online("x")


def test_a_reconnected_bridge_is_not_taken_back_by_an_older_claim():
    bus = LocalBus()
    a, b, _ = workers(bus, bus)
    a.announce("sid-1", hello())
    b.admit("sid-2", "site", {"x": METER.address})  # the bridge reconnected, to B
    b.announce("sid-2", hello())
    a.refresh()  # A still repeats the connection it has not seen drop yet
    assert a.sid == b.sid == {"x": "sid-2"}


def test_a_revoke_through_one_worker_stops_the_bridge_on_the_other():
    bus = LocalBus()
    a, b, _ = workers(bus, bus)
    a.announce("sid-1", hello())
    b.forget(["x"])  # the admin revoked the bridge through worker B
    assert not a.admitted("sid-1")  # A closes the connection at its next reading
    assert not a.online("x") and not b.online("x")
    a.refresh()
    assert not b.online("x")


def test_the_bus_over_redis(redis_url):
    bus_a, bus_b = bus_for(redis_url, KEY), bus_for(redis_url, KEY)
    try:
        assert isinstance(bus_a, RedisBus)
        assert bus_a.wait_subscribed(10) and bus_b.wait_subscribed(10)
        a, b, _ = workers(bus_a, bus_b)
        a.announce("sid-1", hello())
        wait_for(lambda: b.online("x"), timeout=10, what="the claim to cross Redis")
        report(a, "sid-1", 12.0, int(time.time()))
        wait_for(lambda: getattr(b.signed_reading("x"), "wh_in", None) == 12, timeout=10,
                 what="the signed reading to cross Redis")
        bus_b.publish({"t": "claim", "w": "C", "peer": "p", "boards": [{"board_id": 1}]})
        bus_a.publish({"t": "reading"})  # malformed messages are dropped, nothing breaks
        a.disconnect("sid-1")
        wait_for(lambda: not b.online("x"), timeout=10, what="the goodbye to cross Redis")
    finally:
        bus_a.close()
        bus_b.close()
    assert isinstance(bus_for(""), LocalBus) and isinstance(bus_for(None), LocalBus)
    with pytest.raises(ValueError, match="needs a key"):  # an unsigned Redis bus is refused
        bus_for(redis_url)


def test_the_bus_key_is_derived_not_the_secret_itself():
    assert bus_key("s") == bus_key(b"s") != bus_key("t")
    assert b"s" not in bus_key("s") and len(bus_key("s")) == 32
    with pytest.raises(ValueError):
        bus_key("")
