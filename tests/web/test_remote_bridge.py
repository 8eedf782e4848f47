"""Boards on another machine: a bridge reaches the portal over Socket.IO and keeps its meter keys.

The "other machine" is this process talking to the portal only through its HTTP/Socket.IO port
on 127.0.0.1: its own microgrid (alice's PV and carol's load, wired to one bus), its own
bridge on ptys, its own meter keys.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for

REMOTE = {"REMOTE_BOARDS": "pv-alice,load-carol", "BRIDGE_TOKEN": "t0ken"}
ETH = 10**18


@pytest.fixture
def site(server):
    """The other machine: two boards, a bridge on their ptys, connected to the portal."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5)
    grid.add_producer("pv-alice")
    # A small load (10 W × 600 = 1.7 Wh a second), so the 30 Wh budget outlasts the checks of
    # the relays even on a slow machine; 240 W spent it in under a second.
    grid.add_consumer("load-carol", load_w=10.0)
    bridge = Bridge(heartbeat_s=0.5)
    for device in grid.start().values():
        bridge.attach(device)
    keys = {"pv-alice": Account.create(), "load-carol": Account.create()}
    remote = RemoteBridge(bridge, server, "t0ken", keys)
    remote.connect()
    yield grid, keys
    remote.close()
    bridge.close()
    grid.stop()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_wrong_token_is_refused(app, server):
    grid = Microgrid()
    grid.add_consumer("load-carol")
    bridge = Bridge()
    try:
        bridge.attach(grid.start()["load-carol"])
        with pytest.raises(BridgeError, match="refused the bridge"):
            RemoteBridge(bridge, server, "guess", {"load-carol": Account.create()}).connect(3)
    finally:
        bridge.close()
        grid.stop()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_trade_with_boards_on_another_machine(app, runtime, site, login, clock):
    grid, keys = site
    ledger = runtime.ledger
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    wait_for(lambda: runtime.store.participant(demo["carol"]), what="the remote boards")
    # The meters enrolled are the remote machine's keys, which never left it.
    assert ledger.meter_of(keys["pv-alice"].address)["owner"] == demo["alice"]
    assert ledger.meter_of(keys["load-carol"].address)["owner"] == demo["carol"]
    wait_for(lambda: ledger.token_balance(demo["alice"]) >= 60, what="remote-signed mints")

    alice, carol = login("alice"), login("carol")
    listing = alice.signer.create_listing(30, 10**16, 30)
    assert carol.signer.deposit("1")["status"] == "queued"
    wait_for(lambda: ledger.escrow_free(demo["carol"]) == ETH, what="the deposit")
    assert carol.signer.bid(listing["id"], 10**16)["bid_count"] == 1
    clock.advance(31)

    def active():
        deals = carol.get("/api/deals").get_json()["deals"]
        return next((d for d in deals if d["status"] == "active"), None)

    deal = wait_for(active, what="the deal to open")
    # Relays and the budget were switched on the other machine, through its bridge (each
    # board's sender delivers them once the tick queued them).
    wait_for(lambda: runtime.remote_boards.sent("pv-alice")
             and runtime.remote_boards.sent("load-carol"), what="the relay commands")
    assert grid.reading("pv-alice").relays == (True,)
    assert grid.reading("load-carol").relays == (True,)
    assert 0 < grid.reading("load-carol").budgets[0] <= 30
    wait_for(lambda: int(carol.get(f"/api/deals/{deal['id']}").get_json()["paid_wei"]) > 0,
             what="a delivery step reported with the remote meter's key")
    closing = carol.signer.close(deal["id"])  # carol's own signed closeDeal goes with it
    assert closing["status"] in ("closing", "closed")
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["status"] == "closed",
             what="the deal to close")
    wait_for(lambda: runtime.remote_boards.sent("pv-alice")
             and runtime.remote_boards.sent("load-carol"), what="the relay commands")
    assert grid.reading("pv-alice").relays == (False,)
    assert grid.reading("load-carol").relays == (False,)


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_the_bridge_signs_only_meter_transactions(app, runtime, site):
    grid, keys = site
    wait_for(lambda: runtime.remote_boards.sid.get("load-carol"), what="the remote boards")
    meter = runtime.market.meter("load-carol")
    with pytest.raises(BridgeError, match="refused sign"):
        meter.sign_transaction({"to": Account.create().address, "value": 10**18, "gas": 21000,
                                "nonce": 0, "chainId": 1, "maxFeePerGas": 1,
                                "maxPriorityFeePerGas": 1})


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_gridbid_bridge_serves_emulated_boards_to_the_portal(app, runtime, server, tmp_path):
    import subprocess
    import sys

    gridbid = [sys.executable, "-m", "web.cli"]
    boards = subprocess.Popen(
        [*gridbid, "emulate", "--board", "pv-alice:producer", "--board", "load-carol:consumer",
         "--seconds", "60"], stdout=subprocess.PIPE, text=True)
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    bridge = None
    try:
        ports = [boards.stdout.readline().split()[2] for _ in range(2)]
        bridge = subprocess.Popen(
            [*gridbid, "bridge", "--port", ports[0], "--port", ports[1], "--portal", server,
             "--token-file", str(token), "--data-dir", str(tmp_path / "site")])
        wait_for(lambda: set(runtime.remote_boards.sid) == {"pv-alice", "load-carol"},
                 timeout=30, what="gridbid bridge to announce both boards")
        runtime.board_router.set_relay("load-carol", True)  # queued, sent by the board's sender
        wait_for(lambda: runtime.remote_boards.sent("load-carol"), what="the relay command")
        wait_for(lambda: getattr(runtime.board_router.reading("load-carol"), "relays", None)
                 == (True,), what="a reading with the relay closed")
    finally:
        for process in (bridge, boards):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
