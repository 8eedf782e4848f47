"""Energy models over an accelerated emulated day: conservation, battery bounds, relay gating."""

from __future__ import annotations

import random

import pytest

from firmware_bridge.emulator import Microgrid
from firmware_bridge.emulator.microgrid import LINE_LOSS
from firmware_bridge.emulator.models import Meter, PvEmulator
from firmware_bridge.protocol import decode, encode, parse_hello

DAY_S = 24 * 3600


def switch(grid: Microgrid, board_id: str, on: bool) -> None:
    """Close or open relay 0 the way the bridge does: a RELAY frame in a session of its own."""
    board = grid.board(board_id)
    session = parse_hello(decode(board.handle(encode(">", 1, "HELLO"))).args[1:]).session
    reply = board.handle(encode(">", 2, "RELAY", 0, int(on), session=session))
    assert b" OK RELAY " in reply


def test_clear_day_conserves_energy() -> None:
    grid = Microgrid(start_hour=0.0, seed=3)
    grid.add_producer("p1", battery_wh=1200.0, soc=0.5)
    grid.add_producer("p2", pv_peak_w=250.0, battery_wh=800.0, soc=0.8)
    grid.add_consumer("c1", load_w=180.0)
    for board_id in ("p1", "p2", "c1"):
        switch(grid, board_id, True)
    capacity = {"p1": 1200.0, "p2": 800.0}
    stored_before = sum(grid.reading(p).soc * capacity[p] for p in capacity)

    grid.advance(DAY_S)

    readings = {b: grid.reading(b) for b in ("p1", "p2", "c1")}
    pv_in = sum(readings[p].wh_in for p in capacity)  # metered into the batteries
    sent = sum(readings[p].wh_out for p in capacity)
    delivered = readings["c1"].wh_in
    stored_delta = sum(readings[p].soc * capacity[p] for p in capacity) - stored_before
    assert pv_in > 2000 and delivered > 1000  # a real day happened
    assert pv_in == pytest.approx(stored_delta + delivered + grid.line_loss_wh, rel=1e-3)
    assert sent == pytest.approx(delivered + grid.line_loss_wh, rel=1e-9)
    assert delivered / sent == pytest.approx(1 - LINE_LOSS)  # seller's WHOUT > buyer's WHIN


def test_battery_stays_within_capacity_and_surplus_is_curtailed() -> None:
    grid = Microgrid(start_hour=0.0, seed=4)
    grid.add_producer("full", battery_wh=600.0, soc=0.9)  # no load: fills up by midday
    grid.add_producer("empty", pv_peak_w=50.0, battery_wh=300.0, soc=0.2)
    grid.add_consumer("heater", load_w=600.0)
    switch(grid, "empty", True)
    switch(grid, "heater", True)
    socs: dict[str, list[float]] = {"full": [], "empty": []}
    for _ in range(DAY_S // 600):
        grid.advance(600)
        for board_id, seen in socs.items():
            seen.append(grid.reading(board_id).soc)
    for seen in socs.values():
        assert all(0.0 <= soc <= 1.0 for soc in seen)
    assert max(socs["full"]) == pytest.approx(1.0)
    assert min(socs["empty"]) == pytest.approx(0.0, abs=1e-9)
    clear_day_wh = 400.0 * 24 / 3.141592653589793  # integral of the sine profile
    assert grid.reading("full").wh_in < 0.5 * clear_day_wh  # the rest was curtailed


@pytest.mark.parametrize(("producer_on", "consumer_on"), [(False, False), (True, False),
                                                          (False, True), (True, True)])
def test_energy_flows_only_when_both_relays_are_closed(producer_on: bool,
                                                       consumer_on: bool) -> None:
    grid = Microgrid(start_hour=10.0)
    grid.add_producer("p1")
    grid.add_consumer("c1", load_w=240.0)
    switch(grid, "p1", producer_on)
    switch(grid, "c1", consumer_on)
    grid.advance(3600)
    flowing = producer_on and consumer_on
    consumer = grid.reading("c1")
    assert (grid.reading("p1").wh_out > 0) is flowing
    # The Wh counter is the exact integral of the load's power: 240 W for one hour.
    assert consumer.wh_in == pytest.approx(240.0 if flowing else 0.0, abs=1e-6)
    if not flowing:
        assert consumer.power_w == 0.0 and consumer.voltage_v == 0.0


def test_load_profile_changes_demand_by_hour() -> None:
    grid = Microgrid(start_hour=10.0)
    grid.add_producer("p1", soc=1.0)
    grid.add_consumer("c1", load_w=100.0, profile=[(11.0, 300.0)])
    switch(grid, "p1", True)
    switch(grid, "c1", True)
    grid.advance(7200)  # one hour at 100 W, then one at 300 W
    # Demand is held over a 3 s step, so the switch may land one step late: 0.17 Wh.
    assert grid.reading("c1").wh_in == pytest.approx(400.0, abs=0.2)


def test_pv_follows_the_clear_day_profile() -> None:
    pv = PvEmulator(peak_w=400.0, hour=3.0)
    assert pv.step(9 * 3600) == 0.0  # 03:00, night
    assert pv.step(60) == pytest.approx(400.0, rel=0.1)  # noon, with a little noise
    assert pv.clear_sky_w(9.0) == pytest.approx(400.0 * 0.7071, rel=1e-3)
    assert pv.clear_sky_w(18.5) == 0.0


def test_meter_noise_and_no_load_floor() -> None:
    meter = Meter()
    meter.step(3600, 12.5, 0.3, 0.0)  # 0.3 W: below the floor
    assert meter.shown()[2] == 0.0
    meter.step(3600, 12.5, 100.0, 0.0)
    shown = [meter.shown() for _ in range(50)]
    assert len({watts for _, _, watts in shown}) > 1  # noisy...
    assert all(abs(watts - 100.0) < 5.0 for _, _, watts in shown)  # ...but close
    assert meter.wh_in == 100.3  # counters are exact


def test_same_seed_same_day() -> None:
    def day(seed: int) -> float:
        grid = Microgrid(start_hour=6.0, seed=seed)
        grid.add_producer("p1")
        grid.advance(12 * 3600)
        return grid.reading("p1").wh_in

    assert day(5) == day(5)
    assert day(5) != day(6)


def test_a_cloudy_day_yields_less_and_varies_more_than_a_clear_one():
    from firmware_bridge.emulator.models import PvEmulator

    def day(profile):
        pv = PvEmulator(peak_w=400.0, hour=6.0, rng=random.Random(9), profile=profile)
        return [pv.step(60.0) for _ in range(12 * 60)]  # 06:00-18:00, one-minute steps

    clear, cloudy = day("clear"), day("clouds")
    assert 0.3 * sum(clear) < sum(cloudy) < 0.85 * sum(clear)
    # Minute-to-minute swings are the clouds', far larger than the meter noise.
    swings = [abs(b - a) for a, b in zip(cloudy, cloudy[1:], strict=False)]
    assert max(swings) > 40 and max(cloudy) <= 400 * 1.1
    with pytest.raises(ValueError, match="not clear or clouds"):
        PvEmulator(profile="fog")
