"""The bridge signs each board's reading with its meter key: in one domain, at a bounded pace."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from eth_account import Account

from firmware_bridge.bridge import Bridge
from firmware_bridge.signing import ReadingDomain
from tests.common import wait_for

from .common import FAILSAFE_S

DOMAIN = ReadingDomain(1337, "0x" + "12" * 20)
KEYS = {"p1": Account.create(), "c1": Account.create()}


def signing_bridge(devices: dict[str, str], tmp_path, sign_every_s: float) -> Bridge:
    bridge = Bridge(heartbeat_s=FAILSAFE_S / 3, meter_keys=KEYS.__getitem__,
                    odometer_dir=tmp_path / "odometer", sign_every_s=sign_every_s)
    for device in devices.values():
        bridge.attach(device)
    return bridge


@pytest.fixture
def bridge(devices, tmp_path) -> Iterator[Bridge]:
    """Both boards attached to a bridge holding their meter keys, signing every second."""
    bridge = signing_bridge(devices, tmp_path, sign_every_s=1.0)
    yield bridge
    bridge.close()


def test_nothing_is_signed_before_the_domain_is_known(bridge):
    wait_for(lambda: bridge.reading("p1") is not None, what="a reading")
    assert bridge.signed_reading("p1") is None and bridge.signed_reading("c1") is None
    assert bridge.meter("p1") == KEYS["p1"].address


def test_readings_are_signed_by_each_boards_own_meter_in_the_domain(bridge):
    bridge.set_reading_domain(DOMAIN)
    for board_id in ("p1", "c1"):
        signed = wait_for(lambda b=board_id: bridge.signed_reading(b), what="a signed reading")
        assert signed.meter == KEYS[board_id].address and signed.signed_by_meter(DOMAIN)
        assert not signed.signed_by_meter(ReadingDomain(1, DOMAIN.token))  # no other chain
        plain = bridge.reading(board_id)
        assert signed.wh_in <= plain.wh_in and signed.wh_out <= plain.wh_out


def test_signed_readings_move_forward_one_second_at_least(bridge):
    bridge.set_reading_domain(DOMAIN)
    seen = [wait_for(lambda: bridge.signed_reading("p1"), what="a first signed reading")]
    for _ in range(2):
        seen.append(wait_for(lambda: (s := bridge.signed_reading("p1")).timestamp
                             > seen[-1].timestamp and s, what="a newer signed reading"))
    for older, newer in zip(seen, seen[1:], strict=False):
        assert newer.timestamp > older.timestamp
        assert newer.wh_in >= older.wh_in and newer.wh_out >= older.wh_out


def test_at_most_one_signature_per_interval(devices, tmp_path):
    bridge = signing_bridge(devices, tmp_path, sign_every_s=3600.0)
    try:
        bridge.set_reading_domain(DOMAIN)
        first = wait_for(lambda: bridge.signed_reading("p1"), what="a signed reading")
        plain = bridge.reading("p1")
        # Many plain readings later (the board reports every 0.1 s), still the one signature.
        wait_for(lambda: bridge.read("p1").uptime_s > plain.uptime_s + 1, what="later readings")
        assert bridge.signed_reading("p1") is first
        # A new domain (another chain) starts afresh: the old signature proves nothing there.
        other = ReadingDomain(DOMAIN.chain_id + 1, DOMAIN.token)
        bridge.set_reading_domain(other)
        renewed = bridge.signed_reading("p1")
        assert renewed is not None and renewed.signed_by_meter(other)
    finally:
        bridge.close()


def test_readings_of_a_dead_meter_are_not_signed(devices, grid, tmp_path) -> None:
    """METER=FAULT readings carry the last good counters: signing them under a new
    timestamp would claim what nobody measured, so the last signature stays the newest."""
    bridge = signing_bridge(devices, tmp_path, sign_every_s=0.0)
    try:
        bridge.set_reading_domain(DOMAIN)
        bridge.read("c1")
        wait_for(lambda: bridge.signed_reading("c1") is not None, timeout=5.0, what="signed")
        grid.unplug_meter("c1")
        assert bridge.read("c1").meter == "FAULT"
        last = bridge.signed_reading("c1")
        assert last is not None
        while time.time() < last.timestamp + 2:  # past the second a new signature would need
            assert bridge.read("c1").meter == "FAULT"
            time.sleep(0.05)
        assert bridge.signed_reading("c1") == last
        grid.unplug_meter("c1", False)
        wait_for(lambda: (bridge.read("c1").meter == "OK"
                          and bridge.signed_reading("c1") != last), timeout=5.0,
                 what="signing again once the meter answers")
    finally:
        bridge.close()
