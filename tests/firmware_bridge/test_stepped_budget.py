"""Budgets exact within a physics step, and a stepped microgrid that replays a seeded day."""

from __future__ import annotations

import time

import pytest

from firmware_bridge import protocol
from firmware_bridge.emulator import Microgrid
from firmware_bridge.emulator.microgrid import LINE_LOSS
from firmware_bridge.protocol import decode, encode, parse_hello


def command(grid: Microgrid, board_id: str, *frames: tuple[object, ...]) -> None:
    """Send frames to a board the way the bridge does, in a session of its own."""
    board = grid.board(board_id)
    session = parse_hello(decode(board.handle(encode(">", 1, "HELLO"))).args[1:]).session
    for req_id, args in enumerate(frames, start=2):
        reply = board.handle(encode(">", req_id, *args, session=session))
        assert b" OK " in reply, reply


def test_a_consumer_stops_at_its_budget_within_a_step() -> None:
    grid = Microgrid(start_hour=10.0, seed=2)
    grid.add_producer("p1", soc=1.0)
    grid.add_consumer("c1", load_w=240.0)
    command(grid, "p1", ("RELAY", 0, 1))
    command(grid, "c1", ("BUDGET", 0, "10.5"), ("RELAY", 0, 1))

    # One 900 s step would be 60 Wh of load: the board stops at 10.5 Wh in the middle of it.
    grid.advance(3600, step_s=900)

    reading = grid.reading("c1")
    assert reading.wh_in == pytest.approx(10.5, abs=1e-9)
    assert reading.relays == (False,) and reading.budgets == (0.0,)
    # The battery gave what the load took plus the line loss, not a whole step's worth.
    assert grid.reading("p1").wh_out == pytest.approx(10.5 / (1 - LINE_LOSS), abs=1e-9)


def test_a_producer_stops_at_its_budget_and_the_others_carry_the_bus() -> None:
    grid = Microgrid(start_hour=10.0, seed=2)
    grid.add_producer("small", soc=1.0)
    grid.add_producer("big", soc=1.0)
    grid.add_consumer("c1", load_w=240.0)
    command(grid, "small", ("BUDGET", 0, "5"), ("RELAY", 0, 1))
    command(grid, "big", ("RELAY", 0, 1))
    command(grid, "c1", ("RELAY", 0, 1))

    grid.advance(3600, step_s=900)

    assert grid.reading("small").wh_out == pytest.approx(5.0, abs=1e-9)
    assert grid.reading("small").relays == (False,)
    # The load was served in full all hour: the other battery took over mid-step.
    assert grid.reading("c1").wh_in == pytest.approx(240.0, abs=1e-6)
    sent = grid.reading("small").wh_out + grid.reading("big").wh_out
    assert sent * (1 - LINE_LOSS) == pytest.approx(240.0, abs=1e-6)


def _stepped_day(seed: int) -> tuple[list[tuple[float, ...]], dict[str, dict[str, float]]]:
    grid = Microgrid(speed=300.0, start_hour=6.0, seed=seed, stepped=True, step_s=15.0)
    grid.add_producer("p1", sky="clouds")
    grid.add_producer("p2")
    grid.add_consumer("c1", load_w=200.0, profile=[(9.0, 100.0), (12.0, 300.0)])
    command(grid, "p1", ("RELAY", 0, 1))
    command(grid, "c1", ("BUDGET", 0, "250"), ("RELAY", 0, 1))
    trace = []
    for _ in range(8 * 4):  # eight hours in quarter hours, as a driver steps it
        grid.advance(900)
        trace.append(tuple(v for b in ("p1", "p2", "c1")
                           for v in (grid.reading(b).wh_in, grid.reading(b).wh_out)))
    return trace, grid.physics()


def test_a_stepped_grid_replays_its_seeded_day() -> None:
    first, physics = _stepped_day(5)
    again, physics_again = _stepped_day(5)
    other, _ = _stepped_day(6)

    assert first == again and physics == physics_again  # to the last bit
    assert first != other  # the seed is the weather
    assert physics["p1"]["pv_wh"] > 0 and physics["c1"]["wanted_wh"] > 0
    # The load's profile asked for 3 h × 200 W + 3 h × 100 W + 2 h × 300 W, served or not
    # (a profile step may land one 15 s physics step late: under 1 Wh each).
    assert physics["c1"]["wanted_wh"] == pytest.approx(1500.0, abs=1.0)
    assert first[-1][4] == pytest.approx(250.0, abs=1e-9)  # served up to its budget


def test_a_stepped_grid_does_not_move_by_itself() -> None:
    grid = Microgrid(speed=600.0, start_hour=11.0, stepped=True, step_s=15.0,
                     failsafe_timeout=0.2)
    grid.add_producer("p1")
    grid.start()
    try:
        command(grid, "p1", ("RELAY", 0, 1))
        hour = grid.time_of_day()
        # The wall-clock thread runs on (the board's failsafe trips) but moves no physics.
        deadline = time.monotonic() + 30
        while grid.reading("p1").relays != (False,) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert grid.reading("p1").relays == (False,)
        assert grid.time_of_day() == hour and grid.physics()["p1"]["pv_wh"] == 0.0
        grid.advance(60)
        assert grid.time_of_day() == pytest.approx(hour + 60 / 3600)
    finally:
        grid.stop()


def test_a_long_reading_leaves_its_budget_out_as_the_firmware_does() -> None:
    grid = Microgrid(start_hour=10.0, seed=2)
    grid.add_producer("p1", battery_wh=5000.0, soc=1.0, max_discharge_w=5000.0)
    grid.add_consumer("c1", load_w=4000.0)
    command(grid, "p1", ("BUDGET", 0, "99999.5"), ("RELAY", 0, 1))
    command(grid, "c1", ("RELAY", 0, 1))
    grid.advance(3600)  # four-digit counters both ways, and a budget: too long for one frame
    board = grid.board("p1")
    session = parse_hello(decode(board.handle(encode(">", 50, "HELLO"))).args[1:]).session
    reply = board.handle(encode(">", 51, "READ", session=session)).decode()

    fields = dict(arg.split("=", 1) for arg in reply.split("*")[0].split()[3:])
    assert " OK READ " in reply and float(fields["WHOUT"]) > 1000 and "BUDGET" not in fields
    assert "BUDGET=" in ",".join(protocol.reading_fields(grid.reading("p1")))
