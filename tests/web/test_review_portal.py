"""Review of issue 14's portal: attacks by a hostile bridge or participant that still work.

Each test does what the attacker does and asserts they get nothing; a failure is the fault.
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from contracts.bindings import sign_typed
from firmware_bridge.remote import RemoteBridge, socketio_client
from firmware_bridge.remote_boards import RemoteBoards
from firmware_bridge.signing import ReadingDomain, sign_reading
from gridbid_client.client import Client
from gridbid_client.transport import FlaskTransport
from tests.common import wait_for
from tests.web.test_bus_check import _deal, honest_and_lying

REMOTE = {"REMOTE_BOARDS": "pv-alice,load-carol"}


class SignedOnlyFrozenBridge(RemoteBridge):
    """The attacker's bridge, smarter than test_bus_check's: its PLAIN readings are honest (so
    the bus check sees the buyer receive what the seller sent), only what its meter key signs
    keeps WHIN at its first value (the attacker holds that key); budgets are ignored."""

    frozen: dict[str, int]
    keys: dict

    def _emit(self, event, data):
        signed = data.get("signed") if event == "reading" else None
        if signed is not None and self.domain is not None:
            self.__dict__.setdefault("frozen", {})
            wh_in = self.frozen.setdefault(data["board_id"], signed["whIn"])
            data = {**data, "signed": sign_reading(
                self.keys[data["board_id"]], self.domain, wh_in, signed["whOut"],
                signed["timestamp"]).to_json()}
        super()._emit(event, data)

    def _on_command(self, data):
        if data.get("action") == "set_budget":
            return {"ok": True}
        return super()._on_command(data)


@pytest.fixture
def smart_bus(server, login):
    """alice's PV behind an honest bridge, carol's load behind the signed-only-frozen one."""
    yield from honest_and_lying(server, login, SignedOnlyFrozenBridge)


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_review_signed_frozen_buyer_meter_with_honest_plain_readings_takes_the_lot_free(
    app, runtime, smart_bus, login, clock
):
    """F1 (review): the bus check sums the PLAIN readings, the escrow pays on the SIGNED ones:
    a buyer bridge that reports honest plain counters but signs a frozen WHIN passes the bus
    check, draws the whole lot (up to the seller's budget) and pays 0."""
    grid = smart_bus
    deal, carol, alice, before = _deal(runtime, login, clock, grid)
    url = f"/api/deals/{deal['id']}"
    wait_for(lambda: grid.reading("pv-alice").wh_out - before > 1, what="the flow to start")
    # Until the flow stops: the seller's relay opens (budget, full delivery or a pause).
    wait_for(lambda: not grid.reading("pv-alice").relays[0], timeout=120,
             what="the seller's relay to open")
    sent = grid.reading("pv-alice").wh_out - before
    view = carol.get(url).get_json()
    paid = int(view["paid_wei"])
    # What the attacker must not get: energy that is neither paid for nor stopped as a dispute.
    stopped = view["status"] == "paused" and view["error"].startswith("meters disagree")
    assert stopped or paid * 1000 >= 10**16 * int(sent * 0.8), (
        f"{sent:.1f} Wh sent to carol, deal {view['status']} ({view['error']}), paid {paid}")


def _producer_dave(app, login, meter: str) -> tuple[Client, str]:
    """dave registered himself; the admin seated him as a producer on pv-dave, registered to
    dave's own bridge (without any word of an emulator)."""
    admin = login("admin")
    answer = admin.post("/api/admin/bridges", json={
        "id": "dave-site", "boards": [{"board_id": "pv-dave", "meter": meter}]})
    assert answer.status_code == 201, answer.get_json()
    dave = Client(FlaskTransport(app.test_client()), Account.create())
    dave.register("dave", "dave's passphrase", scrypt_n=2**10)
    approved = admin.post(f"/api/admin/registrations/{dave.account.address}/approve",
                          json={"role": "producer", "board_id": "pv-dave"})
    assert approved.status_code == 200, approved.get_json()
    dave.login()
    return dave, answer.get_json()["token"]


def test_review_a_producer_s_own_bridge_picks_its_mint_cap_by_time_factor(
    app, runtime, server, login
):
    """F6 (review): a real board's hello may declare time_factor 2500; the portal asks dave to
    consent to 400 W × 2500 = 1 MW, dave (the attacker) signs, and the meter whose key dave's
    bridge holds may mint 2500× its real production. Nobody but the bridge said 'emulated'.
    Now the factor is the admin's (1 here): the hello naming 2500 is refused, and what dave
    is asked to consent to (and may mint) is the board's real rating."""
    meter = Account.create()
    dave, token = _producer_dave(app, login, meter.address)
    bridge = socketio_client(reconnection=False)
    bridge.connect(server, namespaces=["/bridge"], auth={"bridge": "dave-site", "token": token},
                   wait_timeout=5)

    def hello(**factor):
        return bridge.call("hello", {"boards": [{
            "board_id": "pv-dave", "kind": "producer", "relay_count": 1, "version": 1,
            "meter": meter.address, **factor}]}, namespace="/bridge", timeout=10)

    try:
        answer = hello(time_factor=2500)
        assert "time_factor 2500 is not its registered 1" in answer.get("error", ""), answer
        assert not runtime.remote_boards.online("pv-dave")
        assert "error" not in hello()  # the board as registered: real time
        (pending,) = dave.get("/api/meters/consent")["consents"]
        assert pending["rated_power_w"] <= 400
        mine = "0x" + sign_typed(dave.account, pending["typed_data"]).hex()
        dave.post("/api/meters/consent", {"meter": meter.address,
                                          "deadline": pending["deadline"], "signature": mine})
        wait_for(lambda: runtime.ledger.meter_of(meter.address)["kind"], what="the enrollment")
    finally:
        bridge.disconnect()
    assert runtime.ledger.meter_of(meter.address)["rated_power_w"] <= 400, (
        "the mint cap is what the producer's own bridge declared")


def _boards_with(meter, domain):
    boards = RemoteBoards([], lambda *a: {"ok": True})
    boards.set_reading_domain(domain)
    boards.admit("peer-1", "site", {"load-x": meter.address})
    boards.announce("peer-1", [{"board_id": "load-x", "kind": "consumer",
                                "meter": meter.address}])
    return boards


PLAIN = {"voltage_v": 12.0, "current_a": 1.0, "power_w": 12.0, "wh_in": 5.0, "wh_out": 0.0,
         "relays": [True], "budgets": [None], "uptime_s": 1.0}


def test_review_a_signed_reading_from_the_future_freezes_the_board_s_evidence():
    """F7 (review): a signed reading dated a day ahead is kept (the escrow refuses it:
    ReadingOutOfTime), and every honest reading after it "goes back" in time and is refused,
    so the board's deals are never reported again while its plain readings flow on."""
    meter = Account.create()
    domain = ReadingDomain(1, Account.create().address)
    boards = _boards_with(meter, domain)
    now = int(time.time())
    ahead = sign_reading(meter, domain, 5, 0, now + 86_400)
    boards.report("peer-1", {"board_id": "load-x", "reading": PLAIN, "signed": ahead.to_json()})
    honest = sign_reading(meter, domain, 50, 0, now + 1)
    boards.report("peer-1", {"board_id": "load-x", "reading": {**PLAIN, "wh_in": 50.0},
                             "signed": honest.to_json()})
    kept = boards.signed_reading("load-x")
    assert kept is not None and kept.timestamp <= now + 60, (
        f"the cache holds a reading dated {kept.timestamp - now} s ahead")


def test_review_a_re_registered_board_keeps_the_old_meter_s_signed_reading():
    """Devices (review): the admin revokes a bridge and registers the board again with a new
    meter; the old meter's last signed reading (pumped high before the revocation) stays in
    the cache and every reading of the new meter is refused as "going back"."""
    old, new = Account.create(), Account.create()
    domain = ReadingDomain(1, Account.create().address)
    boards = _boards_with(old, domain)
    now = int(time.time())
    pumped = sign_reading(old, domain, 10**9, 10**9, now)
    boards.report("peer-1", {"board_id": "load-x", "reading": PLAIN,
                             "signed": pumped.to_json()})
    boards.disconnect("peer-1")  # revoked: its connection closed
    boards.admit("peer-2", "site-2", {"load-x": new.address})  # registered again, new meter
    boards.announce("peer-2", [{"board_id": "load-x", "kind": "consumer", "meter": new.address}])
    fresh = sign_reading(new, domain, 5, 0, now + 1)
    boards.report("peer-2", {"board_id": "load-x", "reading": PLAIN, "signed": fresh.to_json()})
    kept = boards.signed_reading("load-x")
    assert kept is not None and kept.meter == new.address, (
        f"the board's signed reading is still the old meter's {kept and kept.meter}")


