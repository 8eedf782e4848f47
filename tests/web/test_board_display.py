"""A board reading with junk in it (F7's web half): the health page, the live charts and the
owner's wallet show the bad values as unknown, log them, and serve everyone else as usual."""

from __future__ import annotations

import dataclasses
import json
import logging

from firmware_bridge.protocol import Reading
from web.extensions import socketio
from web.state import portal

BAD_BOARD = "pv-alice"


def junk_reading(good: Reading) -> Reading:
    """pv-alice's reading as a bridge sent it in F7: text and non-finite numbers for values."""
    return dataclasses.replace(good, power_w="x", pv_w=float("nan"), soc=float("inf"),
                               relays=5, budgets=("a",), wh_out="x")


def serve_junk_for_the_bad_board(monkeypatch, runtime) -> None:
    """Stand-in for a bridge whose reading slipped past the checks at arrival (the devices
    side refuses such readings now; this is the display's own defence, so the router is
    patched to hand one out anyway)."""
    router = runtime.board_router
    real_reading, real_read = router.reading, router.read

    def reading(board_id):
        got = real_reading(board_id)
        return junk_reading(got) if board_id == BAD_BOARD and got is not None else got

    def read(board_id):
        got = real_read(board_id)
        return junk_reading(got) if board_id == BAD_BOARD else got

    monkeypatch.setattr(router, "reading", reading)
    monkeypatch.setattr(router, "read", read)


def test_a_board_with_junk_values_shows_them_unknown_on_the_health_page(app, runtime, login,
                                                                       monkeypatch, caplog):
    """F7: a bridge reading with power_w "x" made the admin health answer 500."""
    admin = login("admin")
    serve_junk_for_the_bad_board(monkeypatch, runtime)
    with caplog.at_level(logging.WARNING, logger="marketplace.readouts"):
        health = admin.get("/api/admin/health")
        admin.get("/api/admin/health")
    assert health.status_code == 200, health.get_json()
    boards = {b["board_id"]: b for b in health.get_json()["boards"]}
    assert boards[BAD_BOARD] == {**boards[BAD_BOARD], "power_w": None, "pv_w": None,
                                 "soc": None, "relays": [], "budgets": [None]}
    others = [b for name, b in boards.items() if name != BAD_BOARD]
    assert others and all(isinstance(b["power_w"], float) and b["relays"] == [False]
                          for b in others)
    warned = [r.getMessage() for r in caplog.records if BAD_BOARD in r.getMessage()]
    assert any("power_w" in text for text in warned)
    assert len(warned) == len(set(warned))  # each bad value logged once, not at every push


def test_live_charts_keep_streaming_to_everyone_past_a_board_with_junk(app, runtime, login,
                                                                      monkeypatch):
    """F7: the same reading broke the live charts for everyone: the grid sample raised (and a
    NaN would have reached every browser as JSON it cannot parse)."""
    bob = login("bob")
    serve_junk_for_the_bad_board(monkeypatch, runtime)
    grid = socketio.test_client(app, namespace="/grid", flask_test_client=bob)
    assert grid.is_connected("/grid")
    portal(app).feed.push_sample()
    received = {}
    for packet in grid.get_received("/grid"):
        received.setdefault(packet["name"], packet["args"][0])
    assert {"snapshot", "sample"} <= set(received)
    for payload in received.values():
        json.dumps(payload, allow_nan=False)  # what a browser's JSON.parse can read
    sample = received["sample"]["boards"]
    bad = next(b for b in sample if b["board_id"] == BAD_BOARD)
    assert bad["power_w"] is None and bad["pv_w"] is None and bad["soc"] is None
    assert all(isinstance(b["power_w"], float) for b in sample if b["board_id"] != BAD_BOARD)


def test_the_owner_of_a_board_with_junk_still_gets_a_wallet(app, runtime, login, monkeypatch):
    """F7: the owner's wallet read the same values (round("x") raised): it shows them unknown."""
    alice = login("alice")
    serve_junk_for_the_bad_board(monkeypatch, runtime)
    wallet = alice.get("/api/wallet")
    assert wallet.status_code == 200, wallet.get_json()
    generation = wallet.get_json()["generation"]
    assert generation["online"] is True
    assert generation["power_w"] is None and generation["energy_out_kwh"] is None
    assert generation["soc"] is None and generation["relay_on"] is False
    assert isinstance(generation["energy_in_kwh"], float)
    json.dumps(wallet.get_json(), allow_nan=False)
