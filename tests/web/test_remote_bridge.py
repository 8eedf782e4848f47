"""Boards on another machine: a bridge reaches the portal over Socket.IO and keeps its meter keys.

The "other machine" is this process talking to the portal only through its HTTP/Socket.IO port
on 127.0.0.1: its own microgrid (alice's PV and carol's load, wired to one bus), its own
bridge on ptys, its own meter keys.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for

REMOTE = {"REMOTE_BOARDS": "pv-alice,load-carol"}
ETH = 10**18


def register(login, boards: dict[str, str], time_factor: float) -> str:
    """The admin registers bridge "site" with these boards and meters, emulated at this time
    factor; its token."""
    answer = login("admin").post("/api/admin/bridges", json={
        "id": "site", "boards": [{"board_id": b, "meter": m, "time_factor": time_factor}
                                 for b, m in boards.items()]})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["token"]


@pytest.fixture
def site(server, login):
    """The other machine: two boards, a bridge on their ptys, registered with the portal and
    connected to it."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5)
    grid.add_producer("pv-alice")
    # A small load (10 W × 600 = 1.7 Wh a second), so the 30 Wh budget outlasts the checks of
    # the relays even on a slow machine; 240 W spent it in under a second.
    grid.add_consumer("load-carol", load_w=10.0)
    keys = {"pv-alice": Account.create(), "load-carol": Account.create()}
    bridge = Bridge(heartbeat_s=0.5, meter_keys=keys.__getitem__)
    for device in grid.start().values():
        bridge.attach(device)
    token = register(login, {board: key.address for board, key in keys.items()}, grid.speed)
    remote = RemoteBridge(bridge, server, token, bridge_id="site")
    remote.connect()
    yield grid, keys, bridge, remote
    remote.close()
    bridge.close()
    grid.stop()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_wrong_token_is_refused(app, server, login):
    """F2: a registered bridge's id with a guessed token is refused."""
    grid = Microgrid()
    grid.add_consumer("load-carol")
    key = Account.create()
    register(login, {"load-carol": key.address}, grid.speed)
    bridge = Bridge(meter_keys=lambda board_id: key)
    try:
        bridge.attach(grid.start()["load-carol"])
        with pytest.raises(BridgeError, match="refused the bridge"):
            RemoteBridge(bridge, server, "guess", bridge_id="site").connect(3)
    finally:
        bridge.close()
        grid.stop()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_trade_with_boards_on_another_machine(app, runtime, site, login, clock):
    grid, keys, _, _ = site
    ledger = runtime.ledger
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    wait_for(lambda: runtime.store.participant(demo["carol"]), what="the remote boards")
    # The meters enrolled are the remote machine's keys, which never left it.
    assert ledger.meter_of(keys["pv-alice"].address)["owner"] == demo["alice"]
    assert ledger.meter_of(keys["load-carol"].address)["owner"] == demo["carol"]
    wait_for(lambda: ledger.token_balance(demo["alice"]) >= 60, what="mints of remote readings")

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
             what="a delivery step reported with the remote meters' signed readings")
    closing = carol.signer.close(deal["id"])  # carol's own signed closeDeal goes with it
    assert closing["status"] in ("closing", "closed")
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["status"] == "closed",
             what="the deal to close")
    wait_for(lambda: runtime.remote_boards.sent("pv-alice")
             and runtime.remote_boards.sent("load-carol"), what="the relay commands")
    assert grid.reading("pv-alice").relays == (False,)
    assert grid.reading("load-carol").relays == (False,)


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_the_portal_gets_no_transaction_signature_from_a_bridge(app, runtime, site):
    """F8: the bridge's meter key signed any transaction for any chain id, gas and fee."""
    grid, keys, _, _ = site
    remote_boards, ledger = runtime.remote_boards, runtime.ledger
    wait_for(lambda: remote_boards.sid.get("load-carol"), what="the remote boards")
    # What the old bridge signed: a call to one of the portal's contracts with a meter's
    # selector, value 0, and whatever chain id, gas and fees the portal chose.
    selector = function_signature_to_4byte_selector("reportDelivery(uint256,uint256)")
    report = "0x" + selector.hex() + "00" * 64
    tx = {"to": ledger.escrow.address, "value": 0, "data": report, "gas": 10**7, "nonce": 0,
          "chainId": 99999, "maxFeePerGas": 10**15, "maxPriorityFeePerGas": 10**15}
    for data in (report, "0x"):
        with pytest.raises(BridgeError, match="unknown command 'sign'"):
            remote_boards.command("load-carol", "sign", tx={**tx, "data": data})
    # What the meter key does sign: its board's readings, in this chain's token domain only.
    domain = ledger.reading_domain()
    signed = wait_for(lambda: remote_boards.signed_reading("load-carol"),
                      what="a signed reading from the bridge")
    assert signed.meter == keys["load-carol"].address and signed.signed_by_meter(domain)


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_gridbid_bridge_serves_emulated_boards_to_the_portal(app, runtime, server, tmp_path,
                                                            login):
    import subprocess
    import sys

    from geth_private.keystore import MachineKeys

    gridbid = [sys.executable, "-m", "web.cli"]
    boards = subprocess.Popen(
        [*gridbid, "emulate", "--board", "pv-alice:producer", "--board", "load-carol:consumer",
         "--seconds", "60"], stdout=subprocess.PIPE, text=True)
    # The site's meter keys are made before the admin registers them: their addresses are
    # what the registration names (a real site reads them off `gridbid bridge`'s first run).
    keys = MachineKeys(tmp_path / "site" / "meters", 2**10)
    token = tmp_path / "token"
    token.write_text(register(login, {b: keys.get(b).address for b in ("pv-alice", "load-carol")},
                              60) + "\n")  # `gridbid emulate`'s default speed
    bridge = None
    try:
        ports = [boards.stdout.readline().split()[2] for _ in range(2)]
        bridge = subprocess.Popen(
            [*gridbid, "bridge", "--port", ports[0], "--port", ports[1], "--portal", server,
             "--bridge-id", "site", "--token-file", str(token),
             "--data-dir", str(tmp_path / "site")])
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


def _active_deal(runtime, login, clock, wh=30):
    """alice sells wh Wh to carol (who prepaid 1 ETH once); the deal once it delivers."""
    ledger = runtime.ledger
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    alice, carol = login("alice"), login("carol")
    wait_for(lambda: ledger.token_balance(demo["alice"]) >= wh, what="mints of remote readings")
    if ledger.escrow_free(demo["carol"]) == 0:
        carol.signer.deposit("1")
        wait_for(lambda: ledger.escrow_free(demo["carol"]) == ETH, what="the deposit")
    listing = alice.signer.create_listing(wh, 10**16, 30)
    carol.signer.bid(listing["id"], 10**16)
    clock.advance(31)
    deal = wait_for(lambda: next((d for d in carol.get("/api/deals").get_json()["deals"]
                                  if d["listing_id"] == listing["id"]
                                  and d["status"] == "active"), None), what="the deal")
    wait_for(lambda: int(carol.get(f"/api/deals/{deal['id']}").get_json()["paid_wei"]) > 0,
             what="a delivery step paid from both meters' signed readings")
    return carol, deal


def _operator_reports(runtime):
    """The operator's delivery reports, as its transaction journal holds them."""
    operator = runtime.ledger.operator.address
    return [r for r in runtime.store.transactions(operator, limit=1000)
            if "report" in r["label"].lower()]


@pytest.mark.parametrize("app", [{**REMOTE, "LOAD_W": 10}], indirect=True)
def test_a_bridge_away_burns_no_nonce_and_its_paused_deal_can_be_closed(
        app, runtime, site, server, login, clock):
    """F4: when a remote meter could not sign, its nonce was taken anyway: the buyer could not
    close the paused deal (409), Close connection answered 500, and after the bridge came
    back every report was refused (a nonce gap)."""
    grid, keys, bridge, remote = site
    carol, deal = _active_deal(runtime, login, clock)
    remote_boards = runtime.remote_boards
    remote.close()  # the bridge goes away: its meters sign nothing the portal sees
    wait_for(lambda: not remote_boards.sid, what="the portal to lose the bridge")
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["error"],
             what="the market to notice")
    clock.advance(11)
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["status"] == "paused",
             what="the deal to pause")
    # Close connection of the paused deal during the outage: accepted, with what it waits for.
    closing = carol.signer.close(deal["id"])
    assert closing["status"] == "closing"
    assert "signed readings" in closing["final_report"]["note"]
    closed = wait_for(lambda: (d := carol.get(f"/api/deals/{deal['id']}").get_json())["status"]
                      == "closed" and d, timeout=30, what="the buyer's close")
    assert closed["close_reason"] == "closed by buyer"
    chain = runtime.ledger.chain_deal(deal["chain_deal_id"])
    assert chain["paidWei"] == chain["priceWeiPerKWh"] * chain["deliveredWh"] // 1000 > 0
    # The bridge comes back: the next deal's reports are all taken (no nonce went missing).
    again = RemoteBridge(bridge, server, remote.token, bridge_id=remote.bridge_id)
    again.connect()
    try:
        _, second = _active_deal(runtime, login, clock)
        carol.signer.close(second["id"])
        wait_for(lambda: carol.get(f"/api/deals/{second['id']}").get_json()["status"]
                 == "closed", timeout=30, what="the second deal to close")
    finally:
        again.close()
    reports = _operator_reports(runtime)
    assert reports and all(r["status"] == "mined" for r in reports), reports


@pytest.mark.parametrize("app", [{**REMOTE, "LOAD_W": 10}], indirect=True)
def test_a_bridge_away_still_gets_its_deal_closed_for_the_fault(app, runtime, site, login, clock):
    """F4: the fault close was never sent when the remote meter could not sign first."""
    grid, keys, bridge, remote = site
    carol, deal = _active_deal(runtime, login, clock)
    remote.close()  # the bridge goes away
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["error"],
             what="the market to notice")
    clock.advance(11)
    wait_for(lambda: carol.get(f"/api/deals/{deal['id']}").get_json()["status"] == "paused",
             what="the deal to pause")
    clock.advance(60)
    closed = wait_for(lambda: (d := carol.get(f"/api/deals/{deal['id']}").get_json())["status"]
                      == "closed" and d, timeout=30, what="the fault close")
    assert closed["close_reason"] == "meter offline"
    carol_address = next(a["address"] for a in runtime.demo_accounts if a["name"] == "carol")
    assert runtime.ledger.escrow_locked(carol_address) == 0
