"""The Bridge over real ptys: attach by id, live readings, relay control, heartbeat upkeep."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.client import BoardInfo
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from tests.common import wait_for

from .common import FAILSAFE_S, REPORT_S


@pytest.fixture
def bridge(devices: dict[str, str]) -> Iterator[Bridge]:
    """A Bridge with both boards of the grid fixture attached, beating 3x per failsafe period."""
    bridge = Bridge(heartbeat_s=FAILSAFE_S / 3)
    for device in devices.values():
        bridge.attach(device)
    yield bridge
    bridge.close()


def test_attach_tracks_boards_by_their_own_id(bridge: Bridge, devices: dict[str, str]) -> None:
    assert bridge.boards() == {
        "p1": BoardInfo("p1", "producer", 1, 2, 600.0),
        "c1": BoardInfo("c1", "consumer", 1, 2, 600.0),
    }
    with pytest.raises(BridgeError, match="cannot open"):  # the bridge holds the port
        bridge.attach(devices["p1"])
    with pytest.raises(BridgeError, match="no board"):
        bridge.reading("nope")
    with pytest.raises(BridgeError, match="cannot open"):
        bridge.attach("/dev/does-not-exist")


def test_unsolicited_readings_reach_subscribers(bridge: Bridge) -> None:
    seen: dict[str, list[Reading]] = {"p1": [], "c1": []}
    lock = threading.Lock()

    def collect(board_id: str, reading: Reading) -> None:
        with lock:
            seen[board_id].append(reading)

    bridge.subscribe(collect)
    wait_for(lambda: all(len(r) >= 3 for r in seen.values()), timeout=20 * REPORT_S,
               what="three readings from each board")
    assert bridge.reading("p1") is not None and bridge.reading("p1").soc is not None
    assert bridge.reading("c1").soc is None  # consumers carry no battery


def test_heartbeat_keeps_relays_closed_and_energy_flowing(bridge: Bridge) -> None:
    bridge.set_relay("p1", True)
    bridge.set_relay("c1", True)
    assert bridge.reading("c1").relays == (True,)  # cached view updated at once
    start = bridge.read("c1").wh_in
    time.sleep(3 * FAILSAFE_S)  # three failsafe periods with only the bridge's heartbeats
    assert bridge.read("p1").relays == (True,)
    consumer = bridge.read("c1")
    assert consumer.relays == (True,)
    assert consumer.wh_in > start + 10  # 240 W at 600x: ~60 Wh in 1.5 s
    # Asked after the consumer's: the cached one may predate it on a loaded machine.
    assert bridge.read("p1").wh_out > consumer.wh_in


def test_closing_the_bridge_lets_the_failsafe_open_relays(grid, bridge: Bridge) -> None:
    bridge.set_relay("p1", True)
    bridge.close()
    wait_for(lambda: grid.reading("p1").relays == (False,), timeout=4 * FAILSAFE_S,
               what="the board to open its relay by itself")
    with pytest.raises(BridgeError):
        bridge.attach(grid.devices["p1"])


def test_two_boards_claiming_one_id_are_refused(bridge: Bridge) -> None:
    from firmware_bridge.emulator import Microgrid

    impostor = Microgrid(failsafe_timeout=FAILSAFE_S)
    impostor.add_producer("p1")
    try:
        with pytest.raises(BridgeError, match="already attached"):
            bridge.attach(impostor.start()["p1"])
    finally:
        impostor.stop()
    assert set(bridge.boards()) == {"p1", "c1"}


def test_a_dead_meter_is_logged_unsigned_and_the_board_offline(
        bridge: Bridge, grid, caplog: pytest.LogCaptureFixture) -> None:
    """The emulated consumer's meter cable is cut: its budget-held relay opens, the bridge
    says so once, keeps the last good counters, and the market sees the board offline."""
    bridge.set_budget("c1", 1000.0)
    bridge.set_relay("c1", True)
    before = bridge.read("c1")
    assert before.meter == "OK" and bridge.online("c1")
    events: list[tuple[str, tuple[str, ...]]] = []
    bridge.subscribe_events(lambda board, verb, args: events.append((board, (verb, *args))))
    caplog.set_level("WARNING", logger="firmware_bridge.bridge")
    grid.unplug_meter("c1")
    wait_for(lambda: ("c1", ("METER", "FAULT")) in events, timeout=5.0, what="METER FAULT")
    faulted = bridge.read("c1")
    assert faulted.meter == "FAULT" and faulted.relays == (False,)
    assert faulted.wh_in == pytest.approx(before.wh_in, abs=1.0)  # last good, not zero
    assert not bridge.online("c1") and bridge.online("p1")
    assert sum("meter not answering" in r.message for r in caplog.records) == 1
    grid.unplug_meter("c1", False)
    wait_for(lambda: ("c1", ("METER", "OK")) in events, timeout=5.0, what="METER OK")
    assert bridge.read("c1").meter == "OK" and bridge.online("c1")
