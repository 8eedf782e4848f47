"""F1: a buyer's own bridge that freezes its meter and ignores its budget takes nothing for free.

The buyer's machine runs a real RemoteBridge (its board on a pty, Socket.IO to the portal on
127.0.0.1) changed as the attacker changed theirs: it reports a frozen WHIN and answers
set_budget with ok without applying it. The seller's board (same emulated bus) is served by an
honest bridge of its own.
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.remote import RemoteBridge
from firmware_bridge.signing import sign_reading
from tests.common import wait_for

REMOTE = {"REMOTE_BOARDS": "pv-alice,load-carol"}
# The bus check made too slow to act within the test: the seller's budget alone must hold.
NO_BUS_CHECK = {**REMOTE, "BUS_WINDOW_WH": 1e9, "BUS_WINDOW_S": 1e9}


class FrozenMeterBridge(RemoteBridge):
    """The attacker's bridge: WHIN stays at its first value — in the plain readings and in
    what its meter key signs (the attacker holds that key) — and budgets are 'set' and ignored."""

    frozen: dict[str, float]

    def _on_reading(self, board_id, reading):
        self.__dict__.setdefault("frozen", {})
        wh_in = self.frozen.setdefault(board_id, reading.wh_in)
        super()._on_reading(board_id, dataclasses.replace(reading, wh_in=wh_in))

    def _emit(self, event, data):
        signed = data.get("signed") if event == "reading" else None
        if signed is not None and self.domain is not None:
            key = self.keys[data["board_id"]]
            data = {**data, "signed": sign_reading(
                key, self.domain, self.frozen[data["board_id"]], signed["whOut"],
                signed["timestamp"]).to_json()}
        super()._emit(event, data)

    def _on_command(self, data):
        if data.get("action") == "set_budget":
            return {"ok": True}
        return super()._on_command(data)


def register(login, bridge_id, board, keys, time_factor):
    """The admin registers one bridge for one board, its meter and the time factor its
    emulator runs at; the bridge's token."""
    answer = login("admin").post("/api/admin/bridges", json={
        "id": bridge_id, "boards": [{"board_id": board, "meter": keys[board].address,
                                     "time_factor": time_factor}]})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["token"]


def honest_and_lying(server, login, liar):
    """One emulated bus: alice's PV behind an honest bridge, carol's load behind a bridge of
    class liar (a RemoteBridge changed as an attacker would); yields the grid, then stops all."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5)
    grid.add_producer("pv-alice")
    grid.add_consumer("load-carol", load_w=10.0)  # 1.7 Wh a second at 600x
    devices = grid.start()
    keys = {"pv-alice": Account.create(), "load-carol": Account.create()}
    honest = Bridge(heartbeat_s=0.5, meter_keys=keys.__getitem__)
    lying = Bridge(heartbeat_s=0.5, meter_keys=keys.__getitem__)
    honest.attach(devices["pv-alice"])
    lying.attach(devices["load-carol"])
    remotes = [RemoteBridge(honest, server, register(login, "alices", "pv-alice", keys,
                                                     grid.speed),
                            bridge_id="alices"),
               liar(lying, server, register(login, "carols", "load-carol", keys, grid.speed),
                    bridge_id="carols")]
    remotes[1].keys = keys
    for remote in remotes:
        remote.connect()
    yield grid
    for remote in remotes:
        remote.close()
    honest.close()
    lying.close()
    grid.stop()


@pytest.fixture
def bus(server, login):
    """alice's PV behind an honest bridge, carol's load behind one that freezes its meter."""
    yield from honest_and_lying(server, login, FrozenMeterBridge)


def _deal(runtime, login, clock, grid):
    """carol wins alice's 30 Wh; the deal is active. Returns (deal, carol, alice, alice's Wh
    out before the deal)."""
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    wait_for(lambda: runtime.store.participant(demo["carol"])
             and runtime.store.participant(demo["alice"]), what="the remote boards")
    wait_for(lambda: runtime.ledger.token_balance(demo["alice"]) >= 30, what="alice's mints")
    alice, carol = login("alice"), login("carol")
    listing = alice.signer.create_listing(30, 10**16, 30)
    carol.signer.deposit("1")
    wait_for(lambda: runtime.ledger.escrow_free(demo["carol"]) > 0, what="the deposit")
    carol.signer.bid(listing["id"], 10**16)
    before = grid.reading("pv-alice").wh_out  # the seller's relay is open: nothing flows yet
    clock.advance(31)
    deal = wait_for(lambda: next((d for d in carol.get("/api/deals").get_json()["deals"]
                                  if d["status"] == "active"), None), what="the deal")
    return deal, carol, alice, before


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_frozen_buyer_meter_pauses_the_deal_and_is_recorded(app, runtime, bus, login, clock):
    """F1: the bus check sees the seller's meter send what the buyer's never receives."""
    grid = bus
    deal, carol, alice, before = _deal(runtime, login, clock, grid)
    url = f"/api/deals/{deal['id']}"
    paused = wait_for(lambda: (d := carol.get(url).get_json())["status"] == "paused" and d,
                      timeout=60, what="the bus check to pause the deal")
    assert paused["error"].startswith("meters disagree: sellers sent")
    assert alice.get(url).get_json()["error"] == paused["error"]  # both parties see why
    wait_for(lambda: runtime.remote_boards.sent("pv-alice"), what="the relay command")
    assert grid.reading("pv-alice").relays == (False,)
    sent = grid.reading("pv-alice").wh_out - before
    assert 5 <= sent < 15  # stopped within a window, far short of the 30 Wh (it took 80)
    assert paused["delivered_wh"] == 0 and paused["paid_wei"] == "0"

    admin = login("admin")
    [found] = admin.get("/api/admin/bus").get_json()["disagreements"]
    assert found["deals"] == [deal["id"]]
    assert set(found["boards"]) == {"pv-alice", "load-carol"}
    assert found["buyers_in_wh"] == 0 and found["sellers_out_wh"] >= 5
    assert carol.get("/api/admin/bus").status_code == 403

    clock.advance(61)  # paused for a disagreement past offline_close_s: ended for the fault
    closed = wait_for(lambda: (d := carol.get(url).get_json())["status"] == "closed" and d,
                      timeout=30, what="the fault close")
    assert closed["close_reason"] in ("meters disagree", "meter offline")
    assert runtime.ledger.escrow_locked(deal["buyer"]) == 0


@pytest.mark.parametrize("app", [NO_BUS_CHECK], indirect=True)
def test_the_seller_s_board_budget_stops_a_buyer_that_ignores_its_own(
    app, runtime, bus, login, clock
):
    """F1: the seller's board holds the deal's energy × (1 + line loss); the buyer drew 80 Wh."""
    grid = bus
    drawn = grid.reading("load-carol").wh_in
    *_, before = _deal(runtime, login, clock, grid)
    wait_for(lambda: grid.reading("pv-alice").wh_out - before > 1, what="the flow to start")
    wait_for(lambda: not grid.reading("pv-alice").relays[0]
             or grid.reading("pv-alice").wh_out - before > 100, timeout=120,
             what="the flow to stop")
    assert 30 <= grid.reading("pv-alice").wh_out - before <= 30 * 1.05 + 0.5
    assert grid.reading("load-carol").wh_in - drawn <= 30 * 1.05  # what really reached carol


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_deal_paused_for_a_disagreement_can_be_closed_by_its_buyer(
    app, runtime, bus, login, clock
):
    """F1: the paused deal is not stuck until the fault close: Close connection ends it."""
    deal, carol, _, _ = _deal(runtime, login, clock, bus)
    url = f"/api/deals/{deal['id']}"
    wait_for(lambda: carol.get(url).get_json()["status"] == "paused", timeout=60,
             what="the bus check to pause the deal")
    assert carol.signer.close(deal["id"])["status"] in ("closing", "closed")
    closed = wait_for(lambda: (d := carol.get(url).get_json())["status"] == "closed" and d,
                      timeout=30, what="the buyer's close")
    assert closed["close_reason"] == "closed by buyer"
    assert runtime.ledger.escrow_locked(deal["buyer"]) == 0
