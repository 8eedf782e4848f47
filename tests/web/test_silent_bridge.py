"""F5: a bridge that is connected but never answers stalls nobody but its own board's sender.

The silent bridge is a real RemoteBridge (its own microgrid, bridge and ptys, reaching the
portal over Socket.IO on 127.0.0.1) whose command handler never acknowledges: it keeps
reporting readings, as a hung bridge process with a live reader thread would.
"""

from __future__ import annotations

import threading

import pytest
from eth_account import Account

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for

SILENT = {"REMOTE_BOARDS": "load-carol"}


class SilentBridge(RemoteBridge):
    """Takes every command and never answers it (until the test lets it go)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = threading.Event()  # a command reached it
        self.release = threading.Event()  # the test ends the silence

    def _on_command(self, data):
        self.asked.set()
        self.release.wait()
        return {"error": "too late"}


@pytest.fixture
def silent(server, login):
    """carol's machine: her load behind a bridge that never answers a command."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5)
    grid.add_consumer("load-carol", load_w=10.0)
    key = Account.create()
    bridge = Bridge(heartbeat_s=0.5, meter_keys=lambda board_id: key)
    for device in grid.start().values():
        bridge.attach(device)
    answer = login("admin").post("/api/admin/bridges", json={
        "id": "carols", "boards": [{"board_id": "load-carol", "meter": key.address,
                                    "time_factor": grid.speed}]})
    assert answer.status_code == 201, answer.get_json()
    remote = SilentBridge(bridge, server, answer.get_json()["token"], bridge_id="carols")
    remote.connect()
    yield remote
    remote.release.set()
    remote.close()
    bridge.close()
    grid.stop()


class WatchedTransport:
    """The portal's real transport, noting which calls to the bridge are still outstanding."""

    def __init__(self, transport):
        self.transport = transport
        self.returned = threading.Event()

    def __call__(self, peer, command, timeout):
        try:
            return self.transport(peer, command, timeout)
        finally:
            self.returned.set()


@pytest.mark.parametrize("app", [SILENT], indirect=True)
def test_an_unrelated_bid_completes_while_a_silent_bridge_holds_a_command(
    app, runtime, silent, login, clock
):
    """F5: the tick that activates carol's deal talks to her silent bridge; bob's bid on
    another lot must not wait for it (it waited 5 s per command under the market lock)."""
    remote = runtime.remote_boards
    remote.timeout = 600.0  # the portal would wait on it for ten minutes
    watched = remote.transport = WatchedTransport(remote.transport)
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    wait_for(lambda: runtime.store.participant(demo["carol"]), what="carol's remote board")
    wait_for(lambda: remote.reading("load-carol"), what="a reading from the silent bridge")
    wait_for(lambda: runtime.ledger.token_balance(demo["alice"]) >= 20, what="alice's mints")
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    first = alice.signer.create_listing(10, 10**16, 30)
    second = alice.signer.create_listing(10, 10**16, 120)  # still open when first closes
    carol.signer.deposit("1")
    bob.signer.deposit("1")
    wait_for(lambda: runtime.ledger.escrow_free(demo["carol"]) > 0
             and runtime.ledger.escrow_free(demo["bob"]) > 0, what="the deposits")
    carol.signer.bid(first["id"], 10**16)
    clock.advance(31)
    assert silent.asked.wait(60), "the deal's activation never reached carol's bridge"

    done = threading.Event()
    answers = []

    def bid():
        answers.append(bob.signer.bid(second["id"], 10**16))
        done.set()

    threading.Thread(target=bid, daemon=True).start()
    assert done.wait(60), "bob's bid waited for carol's silent bridge"
    assert not watched.returned.is_set()  # the command to the silent bridge is still out
    assert answers[0]["bid_count"] == 1
    deal = runtime.market.deals(demo["carol"])[0]
    assert deal["status"] == "active"  # the tick went on past the silent bridge


@pytest.mark.parametrize("app", [SILENT], indirect=True)
def test_python_socketio_s_timeout_becomes_a_bridge_error(app, runtime, silent):
    """F5: socketio.exceptions.TimeoutError is no builtin TimeoutError; it escaped before."""
    remote = runtime.remote_boards
    wait_for(lambda: remote.online("load-carol"), what="the silent bridge's hello")
    remote.timeout = 0.5
    with pytest.raises(BridgeError, match="did not answer"):
        remote.command("load-carol", "set_relay", on=True, relay=0)
