"""A bridge given several portal URLs moves to the next when its connection drops (its worker
died), announces its boards there, and serves commands; the stand-in portals are plain
python-socketio servers on loopback with a /bridge namespace that answers hello."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import socketio
from eth_account import Account
from werkzeug.serving import make_server

from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for

from .common import FAILSAFE_S

TOKEN = Account.create().address


class StandInPortal:
    """A /bridge namespace that admits one token, records hellos and can drop a bridge."""

    def __init__(self) -> None:
        self.sio = socketio.Server(async_mode="threading")
        self.hellos: list[tuple[str, list]] = []
        self.sio.on("connect", self._connect, namespace="/bridge")
        self.sio.on("hello", self._hello, namespace="/bridge")
        self.server = make_server("127.0.0.1", 0, socketio.WSGIApp(self.sio), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _connect(self, sid, environ, auth=None) -> bool:
        return isinstance(auth, dict) and auth.get("token") == "right"

    def _hello(self, sid, data) -> dict:
        self.hellos.append((sid, [b["board_id"] for b in data["boards"]]))
        return {"contracts": [TOKEN], "chain_id": 1337, "token": TOKEN}

    def drop(self) -> None:
        """Close every bridge connection, as a worker that dies does."""
        for sid, _ in self.hellos:
            self.sio.disconnect(sid, namespace="/bridge")

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def portals() -> Iterator[tuple[StandInPortal, StandInPortal]]:
    first, second = StandInPortal(), StandInPortal()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def bridge(devices: dict[str, str]) -> Iterator[Bridge]:
    """The grid fixture's boards on a bridge with meter keys."""
    keys = {board: Account.create() for board in devices}
    bridge = Bridge(heartbeat_s=FAILSAFE_S / 3, meter_keys=keys.__getitem__)
    for device in devices.values():
        bridge.attach(device)
    yield bridge
    bridge.close()


def test_the_bridge_moves_to_the_next_portal_when_its_connection_drops(portals, bridge):
    first, second = portals
    remote = RemoteBridge(bridge, [first.url, second.url], "right", bridge_id="site")
    try:
        remote.connect(timeout=10)
        assert remote.portal_url == first.url and len(first.hellos) == 1
        first.drop()
        wait_for(lambda: second.hellos, timeout=20, what="the hello at the next portal")
        assert sorted(second.hellos[0][1]) == sorted(bridge.boards())
        wait_for(lambda: remote.client.connected and remote.portal_url == second.url,
                 timeout=10, what="the bridge connected to the next portal")
        sid = second.hellos[0][0]
        answer = second.sio.call("command", {"board_id": "c1", "action": "set_relay",
                                             "on": True}, to=sid, namespace="/bridge",
                                 timeout=10)
        assert answer == {"ok": True} and bridge.read("c1").relays == (True,)
    finally:
        remote.close()


def test_no_portal_accepting_is_one_clear_error(portals, bridge):
    first, second = portals
    remote = RemoteBridge(bridge, [first.url, second.url], "wrong", bridge_id="site")
    with pytest.raises(BridgeError, match=f"{first.url} refused.*{second.url} refused"):
        remote.connect(timeout=5)
    with pytest.raises(BridgeError, match="at least one portal URL"):
        RemoteBridge(bridge, [], "right", bridge_id="site")
