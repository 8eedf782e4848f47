"""The bridges' own chain nodes as every portal worker sees them: node statuses checked on
arrival, carried to the other worker over a real Redis board bus (signed, as claims are), a
forged one on the bus dropped, and a toggle sent to the bridge's connection from any worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_bridge.board_bus import CHANNEL, LocalBus, RedisBus, bus_key
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_nodes import RemoteNodes, node_status
from tests.common import wait_for

SIGNER = "0x7Df9a875A174B3bc565e6424A0050ebc1b2D1d82"  # checksummed
GOOD = {"signer": SIGNER, "sealing": True, "peers": 2, "signers": 3, "sealing_signers": 3,
        "toggles": True}
KEY = bus_key("test")


@pytest.mark.parametrize("bad, why", [
    ("junk", "is an object"),
    ({**GOOD, "toggles": "yes"}, "toggles: true or false"),
    ({**GOOD, "signer": "me"}, "signer is an address"),
    ({**GOOD, "sealing": 1}, "sealing: true or false"),
    ({**GOOD, "peers": -1}, "peers is a count"),
    ({**GOOD, "signers": True}, "signers is a count"),
    ({"error": 5, "toggles": True}, "error is a sentence"),
])
def test_a_malformed_node_status_is_refused(bad, why):
    with pytest.raises(BridgeError, match=why):
        node_status(bad)


def test_a_node_s_error_is_kept_short():
    assert node_status({"error": "x" * 10_000, "toggles": False}) == {
        "error": "x" * 300, "toggles": False}


class Workers:
    """Two portal workers' RemoteNodes on a real Redis; the bridge is connected to A."""

    def __init__(self, url: str):
        import redis

        self.sent: list[tuple[str, dict]] = []
        self.buses = [RedisBus(url, key=KEY), RedisBus(url, key=KEY)]
        for bus in self.buses:
            assert bus.wait_subscribed(5)
        self.a = RemoteNodes(self.buses[0], self._transport, "A")
        self.b = RemoteNodes(self.buses[1], self._transport, "B")
        self.attacker = redis.Redis.from_url(url)

    def _transport(self, peer: str, command: dict, timeout: float):
        self.sent.append((peer, command))
        return {"ok": True, "node": {**GOOD, "sealing": command["on"]}}

    def close(self) -> None:
        self.attacker.close()
        for bus in self.buses:
            bus.close()


@pytest.fixture
def workers(redis_url: str) -> Iterator[Workers]:
    setup = Workers(redis_url)
    try:
        yield setup
    finally:
        setup.close()


def test_a_node_reported_to_one_worker_is_known_and_toggled_on_the_other(workers: Workers):
    workers.a.report("sid-1", "site", GOOD)
    wait_for(lambda: "site" in workers.b.nodes(), timeout=10, what="the node on worker B")
    assert workers.b.nodes()["site"] == {**GOOD, "signer": SIGNER, "reporting": True}
    assert workers.b.set_sealing("site", False)["sealing"] is False
    assert workers.sent == [("sid-1", {"action": "set_sealing", "on": False})]
    wait_for(lambda: workers.a.nodes()["site"]["sealing"] is False, timeout=10,
             what="the new status back on worker A")


def test_a_node_status_forged_on_the_bus_is_dropped(workers: Workers):
    workers.a.report("sid-1", "site", GOOD)
    wait_for(lambda: "site" in workers.b.nodes(), timeout=10, what="the node on worker B")
    # Unsigned: the attacker can publish on the workers' Redis but holds no bus key.
    workers.attacker.publish(CHANNEL, '{"t": "node", "w": "Z", "peer": "attacker-sid", '
                                      '"bridge": "site", "node": {"error": "x", '
                                      '"toggles": true}}')
    workers.a.report("sid-1", "site", {**GOOD, "peers": 1})  # the next honest one comes
    wait_for(lambda: workers.b.nodes()["site"]["peers"] == 1, timeout=10,
             what="the honest status after the forged one")
    assert "error" not in workers.b.nodes()["site"]
    workers.b.set_sealing("site", True)
    assert workers.sent[-1][0] == "sid-1"  # the toggle still goes to the real bridge


def test_a_bridge_gone_has_no_node_to_toggle():
    bus = LocalBus()
    nodes = RemoteNodes(bus, lambda *_: {"ok": True}, "A")
    nodes.report("sid-1", "site", GOOD)
    bus.publish({"t": "gone", "w": "A", "peer": "sid-1"})
    assert nodes.nodes() == {}
    with pytest.raises(BridgeError, match="bridge site is not connected"):
        nodes.set_sealing("site", False)


def test_a_bridge_s_odd_answer_to_a_toggle_is_an_error():
    answers = iter([{"error": "Your node keeps sealing: quorum"}, "junk",
                    {"ok": True, "node": {"sealing": "?"}}])
    nodes = RemoteNodes(LocalBus(), lambda *_: next(answers), "A")
    nodes.report("sid-1", "site", GOOD)
    with pytest.raises(BridgeError, match="^Your node keeps sealing: quorum$"):
        nodes.set_sealing("site", False)
    with pytest.raises(BridgeError, match="answered the toggle with 'junk'"):
        nodes.set_sealing("site", False)
    with pytest.raises(BridgeError, match="answered the toggle oddly"):
        nodes.set_sealing("site", False)
