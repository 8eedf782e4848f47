"""Bridges have identities: each registered with its own token and boards; a hello claims only
those, funds and enrolls nothing; a meter is enrolled only with its owner's signed consent.

The attacker here is a Socket.IO client of its own on the portal's HTTP port, saying what a
hostile bridge would say (python-socketio, as `gridbid bridge` uses it).
"""

from __future__ import annotations

import math

import pytest
import socketio
from eth_account import Account

from contracts.bindings import sign_typed
from firmware_bridge.remote import socketio_client
from gridbid_client.client import Client, ClientError
from gridbid_client.transport import FlaskTransport
from tests.common import wait_for

REMOTE = {"REMOTE_BOARDS": "load-carol"}  # carol's board is served from another machine


def register(admin, bridge_id: str, boards: dict[str, str],
             factors: dict[str, float] | None = None) -> str:
    """Register a bridge through the admin API (its boards real, factor 1, unless factors
    names an emulated one's); its token."""
    answer = admin.post("/api/admin/bridges", json={
        "id": bridge_id, "boards": [{"board_id": b, "meter": m,
                                     "time_factor": (factors or {}).get(b, 1)}
                                    for b, m in boards.items()]})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["token"]


def connect(server: str, bridge_id: str, token: str) -> socketio.Client:
    """A bridge connection proving bridge_id with token (ConnectionError when refused)."""
    client = socketio_client(reconnection=False)
    client.connect(server, namespaces=["/bridge"], auth={"bridge": bridge_id, "token": token},
                   wait_timeout=5)
    return client


def hello(client: socketio.Client, *boards: dict) -> dict:
    return client.call("hello", {"boards": list(boards)}, namespace="/bridge", timeout=10)


def board(board_id: str, meter: str, kind: str = "consumer", **more) -> dict:
    return {"board_id": board_id, "kind": kind, "relay_count": 1, "version": 1,
            "meter": meter, **more}


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_five_hellos_with_fresh_meters_fund_and_enroll_nothing(app, runtime, server, login):
    """F2: each hello naming a fresh meter for a registered board is refused: no Ether, no
    enrollment, no consent asked, the board not claimed."""
    registered = Account.create().address
    token = register(login("admin"), "site", {"load-carol": registered})
    bridge = connect(server, "site", token)
    try:
        fresh = [Account.create().address for _ in range(5)]
        for meter in fresh:
            assert "registered with meter" in hello(bridge, board("load-carol", meter))["error"]
    finally:
        bridge.disconnect()
    for meter in fresh:
        assert runtime.ledger.eth_balance(meter) == 0
        assert runtime.ledger.meter_of(meter)["kind"] == 0
    carol = runtime.accounts.address_of("carol")
    assert runtime.store.consents(carol) == []
    assert not runtime.remote_boards.online("load-carol")


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_hello_naming_another_participants_meter_is_refused(app, runtime, server, login):
    """F2: a hello naming alice's meter (on carol's registered board, or on alice's own board)
    is refused; alice's meter stays hers and she keeps minting."""
    ledger = runtime.ledger
    alice = runtime.accounts.address_of("alice")
    alice_meter = runtime.store.participant(alice)["meter_address"]
    before = ledger.meter_of(alice_meter)
    token = register(login("admin"), "site", {"load-carol": Account.create().address})
    bridge = connect(server, "site", token)
    try:
        assert "registered with meter" in hello(bridge, board("load-carol", alice_meter))["error"]
        refused = hello(bridge, board("pv-alice", alice_meter, "producer"))["error"]
        assert "not registered to this bridge" in refused
    finally:
        bridge.disconnect()
    assert ledger.meter_of(alice_meter)["owner"] == before["owner"] == alice
    assert ledger.meter_of(alice_meter)["rated_power_w"] == before["rated_power_w"]
    minted = ledger.token_balance(alice)
    wait_for(lambda: ledger.token_balance(alice) > minted, what="alice to mint on")


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_bridge_b_cannot_claim_bridge_as_board_while_a_is_offline(app, runtime, server, login):
    """F2: a board registered to bridge A is A's alone, even while A is not connected."""
    admin = login("admin")
    meter_a = Account.create().address
    register(admin, "site-a", {"load-carol": meter_a})
    token_b = register(admin, "site-b", {"load-other": Account.create().address})
    b = connect(server, "site-b", token_b)
    try:
        answer = hello(b, board("load-carol", meter_a))
    finally:
        b.disconnect()
    assert "not registered to this bridge" in answer["error"]
    assert not runtime.remote_boards.online("load-carol")
    assert runtime.ledger.meter_of(meter_a)["kind"] == 0
    # Nor can the admin hand A's board or meter to a second bridge.
    again = admin.post("/api/admin/bridges", json={
        "id": "site-c", "boards": [{"board_id": "load-carol", "meter": Account.create().address}]})
    assert again.status_code == 400 and "site-a" in again.get_json()["error"]


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_wrong_or_another_bridges_token_is_refused(app, runtime, server, login):
    """F2: every bridge has its own token: a guess, another bridge's token or a revoked one
    opens nothing."""
    admin = login("admin")
    token_a = register(admin, "site-a", {"load-carol": Account.create().address})
    token_b = register(admin, "site-b", {"load-other": Account.create().address})
    for bridge_id, token in (("site-a", token_b), ("site-a", "guess"), ("nobody", token_a),
                             ("site-a", "")):
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(server, bridge_id, token)
    listed = admin.get("/api/admin/bridges").get_json()["bridges"]
    assert [b["id"] for b in listed] == ["site-a", "site-b"]
    assert "token" not in str(listed) and token_a not in str(listed)
    a = connect(server, "site-a", token_a)
    wait_for(lambda: runtime.remote_boards.peers_of("site-a"), what="site-a admitted")
    assert admin.delete("/api/admin/bridges/site-a").status_code == 200
    wait_for(lambda: not a.connected, what="the revoked bridge to be disconnected")
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(server, "site-a", token_a)


def test_a_board_s_time_factor_is_registered_by_the_admin(app, login):
    """F6 (review): the time factor is 1..10000 (1 when not given), kept and listed per board;
    anything else is a clear 400."""
    admin = login("admin")
    for bad in (0, 0.5, -1, "600", True, 10**9, None):
        refused = admin.post("/api/admin/bridges", json={"id": "site", "boards": [
            {"board_id": "load-x", "meter": Account.create().address, "time_factor": bad}]})
        if bad is None:  # JSON null: not given, a real board
            assert refused.status_code == 201
            admin.delete("/api/admin/bridges/site")
            continue
        assert refused.status_code == 400 and "time_factor" in refused.get_json()["error"]
    register(admin, "site", {"load-x": Account.create().address, "pv-y": Account.create().address},
             {"pv-y": 600})
    (listed,) = admin.get("/api/admin/bridges").get_json()["bridges"]
    assert {b["board_id"]: b["time_factor"] for b in listed["boards"]} == {
        "load-x": 1, "pv-y": 600}


def test_only_admins_register_bridges(app, login):
    """A participant cannot register a bridge of their own."""
    refused = login("bob").post("/api/admin/bridges", json={
        "id": "mine", "boards": [{"board_id": "load-x", "meter": Account.create().address}]})
    assert refused.status_code == 403


def _dave(app, login, meter: str) -> Client:
    """dave registered himself and the admin seated him on load-dave, registered to a bridge."""
    admin = login("admin")
    token = register(admin, "dave-site", {"load-dave": meter})
    dave = Client(FlaskTransport(app.test_client()), Account.create())
    dave.register("dave", "dave's passphrase", scrypt_n=2**10)
    approved = admin.post(f"/api/admin/registrations/{dave.account.address}/approve",
                          json={"role": "consumer", "board_id": "load-dave"})
    assert approved.status_code == 200, approved.get_json()
    dave.login()
    dave.bridge_token = token
    return dave


def test_enrollment_needs_the_owners_own_consent(app, runtime, server, login):
    """F3: the portal enrolls a meter for dave only with dave's signature: the bridge's hello,
    a consent signed by the operator's or the meter's own key, all enroll nothing."""
    meter = Account.create()
    dave = _dave(app, login, meter.address)
    ledger = runtime.ledger
    bridge = connect(server, "dave-site", dave.bridge_token)
    try:
        assert "error" not in hello(bridge, board("load-dave", meter.address))
        (pending,) = dave.get("/api/meters/consent")["consents"]
        assert (pending["meter"], pending["board_id"], pending["rated_power_w"]) == (
            meter.address, "load-dave", 240)
        assert ledger.meter_of(meter.address)["kind"] == 0  # the hello enrolled nothing
        for forger in (meter, Account.create()):
            forged = "0x" + sign_typed(forger, pending["typed_data"]).hex()
            with pytest.raises(ClientError) as refused:
                dave.post("/api/meters/consent", {"meter": meter.address,
                                                  "deadline": pending["deadline"],
                                                  "signature": forged})
            assert refused.value.status == 403
        assert ledger.meter_of(meter.address)["kind"] == 0
        mine = "0x" + sign_typed(dave.account, pending["typed_data"]).hex()
        sent = dave.post("/api/meters/consent", {"meter": meter.address,
                                                 "deadline": pending["deadline"],
                                                 "signature": mine})
        assert sent["tx_hash"]
        wait_for(lambda: runtime.store.participant(dave.account.address)["meter_address"],
                 what="dave seated once his enrollment is mined")
        entry = ledger.meter_of(meter.address)
        assert (entry["owner"], entry["rated_power_w"]) == (dave.account.address, 240)
        assert dave.get("/api/meters/consent")["consents"] == []
    finally:
        bridge.disconnect()


@pytest.mark.parametrize("app", [{"REMOTE_BOARDS": "load-carol,pv-alice"}], indirect=True)
def test_rated_power_follows_the_boards_declared_clock(app, runtime, server, login):
    """F6: a remote board in real time is enrolled at its real rating (carol's 240 W), an
    emulated one at rating × the time factor the admin registered and its HELLO repeats
    (alice's 400 W × 60); a local emulated board at rating × EMULATOR_SPEED (bob's 240 W × 600).
    No ×1.25 anywhere."""
    carol_meter, alice_meter = Account.create().address, Account.create().address
    token = register(login("admin"), "site", {"load-carol": carol_meter,
                                              "pv-alice": alice_meter}, {"pv-alice": 60})
    bridge = connect(server, "site", token)
    try:
        answer = hello(bridge, board("load-carol", carol_meter, time_factor=1),
                       board("pv-alice", alice_meter, "producer", time_factor=60))
        assert "error" not in answer and answer["token"] == runtime.ledger.addresses()[
            "EnergyToken"]
        ledger = runtime.ledger
        wait_for(lambda: ledger.meter_of(alice_meter)["kind"] and
                 ledger.meter_of(carol_meter)["kind"], what="the demo's own consents enrolled")
        assert ledger.meter_of(carol_meter)["rated_power_w"] == 240
        assert ledger.meter_of(alice_meter)["rated_power_w"] == 400 * 60
    finally:
        bridge.disconnect()
    bob_meter = runtime.store.participant(runtime.accounts.address_of("bob"))["meter_address"]
    assert ledger.meter_of(bob_meter)["rated_power_w"] == 240 * 600


GOOD = {"voltage_v": 12.0, "current_a": 1.0, "power_w": 12.0, "wh_in": 5.0, "wh_out": 0.0,
        "relays": [False], "budgets": [None], "soc": None, "pv_w": None, "uptime_s": 1.0}


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_bad_readings_are_refused_and_health_and_charts_keep_working(app, runtime, server,
                                                                       login):
    """F7: power_w "x", wh_in NaN or Infinity from a bridge are refused: the admin health and
    the live charts answer with the last good reading, and alice keeps minting."""
    from web.state import portal

    meter = Account.create().address
    token = register(login("admin"), "site", {"load-carol": meter})
    bridge = connect(server, "site", token)
    admin = login("admin")
    try:
        assert "error" not in hello(bridge, board("load-carol", meter, time_factor=1))
        bridge.emit("reading", {"board_id": "load-carol", "reading": GOOD}, namespace="/bridge")
        wait_for(lambda: runtime.remote_boards.reading("load-carol"), what="the good reading")
        for bad in ({"power_w": "x"}, {"wh_in": math.nan}, {"wh_in": math.inf},
                    {"relays": ["x"]}):
            bridge.emit("reading", {"board_id": "load-carol", "reading": {**GOOD, **bad}},
                        namespace="/bridge")
        # One more good reading after the bad ones: when it shows, every bad one was handled.
        bridge.emit("reading", {"board_id": "load-carol",
                                "reading": {**GOOD, "wh_in": 6.0, "power_w": 13.0}},
                    namespace="/bridge")
        wait_for(lambda: runtime.remote_boards.reading("load-carol").wh_in == 6.0,
                 what="the last good reading")
        health = admin.get("/api/admin/health")
        assert health.status_code == 200
        carol = next(b for b in health.get_json()["boards"] if b["board_id"] == "load-carol")
        assert carol["power_w"] == 13.0
        sample = portal(app).feed.sample()  # what the live charts get pushed
        charted = next(b for b in sample["boards"] if b["board_id"] == "load-carol")
        assert charted["power_w"] == 13.0
        minted = runtime.ledger.token_balance(runtime.accounts.address_of("alice"))
        wait_for(lambda: runtime.ledger.token_balance(
            runtime.accounts.address_of("alice")) > minted, what="alice to mint on")
    finally:
        bridge.disconnect()


@pytest.mark.browser
def test_the_wallet_view_signs_a_consent_in_the_page(server, browser, runtime):
    """F3 through the pages: bob's wallet view lists the meter waiting for his consent; Sign
    signs the EIP-712 MeterConsent with the key unlocked in the page, and only then is the meter
    enrolled as his."""
    from tests.common import page_login

    bob = runtime.accounts.address_of("bob")
    meter = Account.create().address
    runtime.meters.request(bob, meter, "load-bob", "consumer", 500)
    assert runtime.ledger.meter_of(meter)["kind"] == 0
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, server, "bob", "bob-demo", "/wallet")
    page.wait_for_selector(f"#consents tr[data-meter='{meter}']")
    # Cell by cell: the meter's random address may itself contain "500".
    cells = page.locator(f"#consents tr[data-meter='{meter}'] td").all_inner_texts()
    assert cells[:4] == [meter, "load-bob", "consumer", "500"]
    page.click(f"#consents tr[data-meter='{meter}'] .sign-consent")
    wait_for(lambda: runtime.ledger.meter_of(meter)["owner"] == bob, what="bob's enrollment")
    assert runtime.ledger.meter_of(meter)["rated_power_w"] == 500
    page.wait_for_selector("#consents-card", state="hidden")
    assert errors == []


@pytest.mark.browser
def test_the_admin_view_registers_and_revokes_a_bridge(server, browser, runtime):
    """The admin registers a bridge in the page (its token shown once, and it proves that
    bridge, its board's time factor the one given), sees it listed, and revokes it."""
    from tests.common import page_login

    meter = Account.create().address
    page = browser.new_context().new_page()
    page_login(page, server, "admin", runtime.admin_accounts[0]["passphrase"], "/admin")
    page.fill("#bridge-id", "site-9")
    page.fill("#bridge-boards", f"load-zed {meter}")
    page.fill("#bridge-time-factor", "600")  # an emulated board's
    page.click("#register-bridge")
    page.wait_for_selector("#bridge-token-box:not([hidden])")
    assert runtime.store.bridge("site-9")["boards"][0]["time_factor"] == 600
    token = page.inner_text("#bridge-token").strip()
    page.wait_for_selector("#bridges tr[data-bridge='site-9']")
    connect(server, "site-9", token).disconnect()  # the token shown is the bridge's
    page.click("#bridges tr[data-bridge='site-9'] .revoke")
    page.wait_for_selector("#bridges tr[data-bridge='site-9']", state="detached")
    assert runtime.store.bridge("site-9") is None
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(server, "site-9", token)


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_demo_owner_s_enrollment_refused_at_the_hello_is_sent_again(app, runtime, server,
                                                                      login, monkeypatch):
    """The chain refused carol's enrollment when her bridge said hello (a fault injected
    here: the ledger's send raises once, as with the node away); her consent stayed pending,
    and nothing asks again for a board already claimed, so she sat on no board for good.
    The enrollment loop signs her consent again (the demo holds her key) and sends it."""
    from marketplace.errors import ChainActionFailed

    ledger = runtime.meters.ledger
    real = ledger.enroll_meter_async
    refused = []

    def away_once(*args):
        if not refused:
            refused.append(args)
            raise ChainActionFailed("the node at http://127.0.0.1:1 did not answer")
        return real(*args)

    monkeypatch.setattr(ledger, "enroll_meter_async", away_once)
    carol_meter = Account.create().address
    token = register(login("admin"), "site", {"load-carol": carol_meter})
    bridge = connect(server, "site", token)
    try:
        hello(bridge, board("load-carol", carol_meter))
        carol = runtime.accounts.address_of("carol")
        wait_for(lambda: refused, timeout=10, what="the first enrollment refused")
        seated = wait_for(lambda: runtime.store.participant(carol), timeout=30,
                          what="carol seated once her enrollment was sent again")
        assert seated["meter_address"] == carol_meter
        assert ledger.meter_of(carol_meter)["owner"] == carol
        assert runtime.store.consents(carol) == []  # none left pending
    finally:
        bridge.disconnect()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_consent_for_a_board_s_old_meter_is_not_sent_again(app, runtime, server, login,
                                                             monkeypatch):
    """carol's first meter's enrollment was refused at its hello (the node away); the admin
    then registered her board anew with another meter (the board's key replaced), which was
    enrolled and seated. The enrollment loop must not send the old meter's consent, still
    pending, once the node is back: mined, it seated carol with the old meter, and the
    readings her board signs with the new one no longer counted."""
    from marketplace.errors import ChainActionFailed

    ledger = runtime.meters.ledger
    real = ledger.enroll_meter_async
    old, new = Account.create().address, Account.create().address
    away = {old}

    def node_away_for(meter, *rest):
        if meter in away:
            raise ChainActionFailed("the node at http://127.0.0.1:1 did not answer")
        return real(meter, *rest)

    monkeypatch.setattr(ledger, "enroll_meter_async", node_away_for)
    admin = login("admin")
    carol = runtime.accounts.address_of("carol")
    bridge = connect(server, "site", register(admin, "site", {"load-carol": old}))
    try:
        hello(bridge, board("load-carol", old))
        wait_for(lambda: runtime.store.consents(carol), what="the old meter's consent pending")
    finally:
        bridge.disconnect()
    assert admin.delete("/api/admin/bridges/site").status_code == 200
    bridge = connect(server, "site", register(admin, "site", {"load-carol": new}))
    try:
        hello(bridge, board("load-carol", new))
        wait_for(lambda: (runtime.store.participant(carol) or {}).get("meter_address") == new,
                 timeout=30, what="carol seated with her board's new meter")
        away.clear()  # the node is back
        runtime.meters._retries.clear()  # the old consent's backoff over
        runtime.meters.retry()
        wait_for(lambda: not runtime.meters._sent, timeout=30, what="no enrollment in flight")
        assert runtime.store.participant(carol)["meter_address"] == new
        assert ledger.meter_of(old)["kind"] == 0  # never enrolled: her board no longer has it
    finally:
        bridge.disconnect()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_retry_pass_during_the_first_send_sends_nothing_more(app, runtime, server, login,
                                                                monkeypatch):
    """carol's hello sends her enrollment; the node is slow to take it (the send held 1 s
    here), and the enrollment loop's pass meanwhile found her consent still pending and sent
    it too: the second reverted ConsentUsed (or, signed another second, enrolled her meter
    twice), and its failure set her consent pending again after the first had enrolled it.
    The consent is taken for sending by one of them only."""
    import threading
    import time

    ledger = runtime.meters.ledger
    real = ledger.enroll_meter_async
    sends = []

    def slow(*args):
        sends.append(args)
        time.sleep(1.0)
        return real(*args)

    monkeypatch.setattr(ledger, "enroll_meter_async", slow)
    carol_meter = Account.create().address
    carol = runtime.accounts.address_of("carol")
    bridge = connect(server, "site", register(login("admin"), "site",
                                              {"load-carol": carol_meter}))
    try:
        said = threading.Thread(target=hello, args=(bridge, board("load-carol", carol_meter)))
        said.start()
        wait_for(lambda: sends, timeout=10, what="the hello's send")
        runtime.meters.retry()  # the loop's pass while that send waits for the node
        said.join(timeout=30)
        wait_for(lambda: runtime.store.participant(carol), timeout=30, what="carol seated")
        wait_for(lambda: not runtime.meters._sent, timeout=30, what="no enrollment in flight")
        assert len(sends) == 1
        assert runtime.store.consent(carol, carol_meter)["status"] == "enrolled"
    finally:
        bridge.disconnect()
