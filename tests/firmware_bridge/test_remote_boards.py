"""What remote bridges say, as RemoteBoards takes it: claims of registered boards only, and
readings checked before anything uses them (no portal: the transport is never called)."""

from __future__ import annotations

import logging
import math
import time

import pytest
from eth_account import Account

from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_boards import RemoteBoards
from firmware_bridge.signing import ReadingDomain, sign_reading

METER_A, METER_B = Account.create(), Account.create()
GOOD = {"voltage_v": 12.1, "current_a": 0.5, "power_w": 6.0, "wh_in": 10.0, "wh_out": 2.0,
        "relays": [False], "soc": None, "pv_w": None, "uptime_s": 3.0, "budgets": [None]}


def unreachable(peer, command, timeout):
    raise AssertionError("no command is sent in these tests")


@pytest.fixture
def boards() -> RemoteBoards:
    """Bridge A (peer a) may serve board x with meter A; bridge B (peer b) board y, meter B."""
    remote = RemoteBoards([], unreachable)
    remote.admit("a", "site-a", {"x": METER_A.address})
    remote.admit("b", "site-b", {"y": METER_B.address})
    return remote


def hello(board_id: str, meter: str, kind: str = "consumer", **more) -> list[dict]:
    return [{"board_id": board_id, "kind": kind, "meter": meter, **more}]


def test_a_bridge_claims_only_its_registered_boards_with_their_meters(boards):
    """F2: a hello claims only what is registered to that bridge, with the registered meter."""
    seen = []
    boards.subscribe(seen.append)
    with pytest.raises(BridgeError, match="not registered to this bridge"):
        boards.announce("b", hello("x", METER_A.address))  # A's board, A offline
    with pytest.raises(BridgeError, match="registered with meter"):
        boards.announce("b", hello("y", Account.create().address))  # a fresh meter
    with pytest.raises(BridgeError, match="registered with meter"):
        boards.announce("b", hello("y", METER_A.address))  # someone else's meter
    with pytest.raises(BridgeError, match="not an admitted bridge"):
        boards.announce("stranger", hello("x", METER_A.address))
    assert seen == [] and boards.sid == {}
    boards.admit("a", "site-a", {"x": METER_A.address}, {"x": 60})  # registered emulated
    claimed = boards.announce("a", hello("x", METER_A.address.lower(), time_factor=60))
    assert [(b.board_id, b.meter, b.time_factor) for b in claimed] == [
        ("x", METER_A.address, 60.0)]
    assert seen == claimed and boards.sid == {"x": "a"}


def test_a_board_stays_its_bridges_while_that_bridge_is_offline(boards):
    """F2: bridge B cannot claim bridge A's board after A went away."""
    boards.announce("a", hello("x", METER_A.address))
    boards.disconnect("a")
    assert not boards.online("x")
    with pytest.raises(BridgeError, match="not registered to this bridge"):
        boards.announce("b", hello("x", METER_A.address))
    assert not boards.online("x")
    boards.admit("a2", "site-a", {"x": METER_A.address})  # A itself, reconnected
    boards.announce("a2", hello("x", METER_A.address))
    assert boards.sid == {"x": "a2"}


@pytest.mark.parametrize("factor", [0, 0.5, -1, math.inf, math.nan, True, "60", 10**9])
def test_a_time_factor_out_of_range_is_refused(boards, factor):
    """F6: the declared time factor is a finite number from 1 (real time) up."""
    with pytest.raises(BridgeError, match="time_factor"):
        boards.announce("a", hello("x", METER_A.address, time_factor=factor))


@pytest.mark.parametrize(("registered", "declared"), [(1, 2500), (1, 60), (600, 1), (600, None)])
def test_a_time_factor_other_than_the_registered_one_is_refused(boards, registered, declared):
    """F6 (review): the time factor scales the mint cap, so it is the admin's: a hello naming
    another one (or none, 1, for a board registered emulated) claims nothing."""
    boards.admit("a", "site-a", {"x": METER_A.address}, {"x": registered})
    more = {} if declared is None else {"time_factor": declared}
    with pytest.raises(BridgeError, match=f"is not its registered {registered}"):
        boards.announce("a", hello("x", METER_A.address, **more))
    assert not boards.online("x")


BAD = [("power_w", "x"), ("power_w", None), ("wh_in", math.nan), ("wh_in", math.inf),
       ("wh_out", -math.inf), ("wh_in", -1), ("voltage_v", True), ("relays", ["on"]),
       ("relays", "1"), ("budgets", [math.nan]), ("soc", "full"), ("uptime_s", math.nan)]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_a_bad_reading_is_refused_and_the_last_good_one_kept(boards, caplog, field, value):
    """F7: a reading with a non-number, NaN/Infinity or non-boolean relays is refused with a
    log line; the board's last good reading stays."""
    boards.announce("a", hello("x", METER_A.address))
    boards.report("a", {"board_id": "x", "reading": GOOD})
    with caplog.at_level(logging.WARNING):
        boards.report("a", {"board_id": "x", "reading": {**GOOD, field: value}})
    assert boards.reading("x").power_w == 6.0 and boards.reading("x").wh_in == 10.0
    assert "reading of x refused" in caplog.text


def test_counters_never_go_back(boards, caplog):
    """F7: a reading whose wh_in or wh_out is below the last one's is refused."""
    boards.announce("a", hello("x", METER_A.address))
    boards.report("a", {"board_id": "x", "reading": GOOD})
    with caplog.at_level(logging.WARNING):
        boards.report("a", {"board_id": "x", "reading": {**GOOD, "wh_in": 9.0}})
        boards.report("a", {"board_id": "x", "reading": {**GOOD, "wh_out": 1.0}})
    assert boards.reading("x").wh_in == 10.0 and boards.reading("x").wh_out == 2.0
    assert caplog.text.count("went back") == 2
    boards.report("a", {"board_id": "x", "reading": {**GOOD, "wh_in": 11.5, "wh_out": 2.0}})
    assert boards.reading("x").wh_in == 11.5


def test_another_bridges_reading_is_ignored(boards):
    """A reading for a board its bridge does not serve changes nothing."""
    boards.announce("a", hello("x", METER_A.address))
    boards.report("b", {"board_id": "x", "reading": GOOD})
    assert boards.reading("x") is None


def test_signed_readings_are_kept_only_from_the_registered_meter(boards):
    """A signed reading counts only when the board's registered meter signed it for our chain
    and token (bridge A cannot pass off readings signed by another key or for another chain)."""
    domain = ReadingDomain(1337, Account.create().address)
    boards.set_reading_domain(domain)
    boards.announce("a", hello("x", METER_A.address))

    def send(key, at, where=domain):
        signed = sign_reading(key, where, 10, 2, at).to_json()
        boards.report("a", {"board_id": "x", "reading": GOOD, "signed": signed})

    send(METER_B, 100)  # another meter's key
    send(METER_A, 100, ReadingDomain(1, domain.token))  # signed for another chain
    assert boards.signed_reading("x") is None
    send(METER_A, 100)
    assert boards.signed_reading("x").timestamp == 100
    send(METER_A, 99)  # older: the latest stays
    assert boards.signed_reading("x").timestamp == 100


def test_a_signed_reading_dated_ahead_of_the_portal_is_refused(boards, caplog):
    """F7 (review): a signed reading dated more than MAX_SKEW_S past the portal's clock is
    refused with a log line; the honest ones before and after it are kept."""
    domain = ReadingDomain(1337, Account.create().address)
    boards.set_reading_domain(domain)
    boards.announce("a", hello("x", METER_A.address))
    now = int(time.time())

    def send(wh, at):
        signed = sign_reading(METER_A, domain, wh, 0, at).to_json()
        boards.report("a", {"board_id": "x", "reading": GOOD, "signed": signed})

    send(10, now)
    with caplog.at_level(logging.WARNING):
        send(20, now + 3600)
    assert boards.signed_reading("x").timestamp == now
    assert "ahead of the portal's clock" in caplog.text
    send(30, now + 1)
    assert boards.signed_reading("x").wh_in == 30


def test_a_revoked_bridge_s_boards_forget_what_they_reported(boards):
    """Devices (review): once its bridge is revoked, a board's cached readings are dropped and
    its bridge's later reports ignored, so a board registered again starts afresh."""
    domain = ReadingDomain(1337, Account.create().address)
    boards.set_reading_domain(domain)
    boards.announce("a", hello("x", METER_A.address))
    signed = sign_reading(METER_A, domain, 10**9, 10**9, int(time.time())).to_json()
    boards.report("a", {"board_id": "x", "reading": GOOD, "signed": signed})
    assert boards.signed_reading("x") is not None
    boards.forget(["x"])
    boards.report("a", {"board_id": "x", "reading": GOOD, "signed": signed})
    assert (boards.reading("x"), boards.signed_reading("x"), boards.online("x")) == (
        None, None, False)


def test_a_dead_meter_makes_the_board_offline_to_the_market(boards):
    """A reading with meter FAULT (last good counters) is kept and readable, but the board
    counts as offline until a reading with a working meter comes; other states are refused."""
    boards.announce("a", hello("x", METER_A.address))
    boards.report("a", {"board_id": "x", "reading": GOOD})
    assert boards.online("x") and boards.read("x").meter == "OK"
    boards.report("a", {"board_id": "x", "reading": {**GOOD, "meter": "FAULT"}})
    assert not boards.online("x") and boards.read("x").meter == "FAULT"
    boards.report("a", {"board_id": "x", "reading": {**GOOD, "meter": "WAIT"}})  # no values
    assert boards.read("x").meter == "FAULT"  # refused, the last good one kept
    boards.report("a", {"board_id": "x", "reading": {**GOOD, "meter": "OK"}})
    assert boards.online("x")
