"""The ATmega1284P firmware: built with -Werror (sizes printed), then run in libsimavr with the
real bridge client (firmware_bridge.client) on the harness's pty and a scripted PZEM-017.

Timings are asserted in the AVR's simulated milliseconds (the harness's log), never in wall
time. Each test drives one board the way the scenario suite's drivers do (AvrSim), so these
can move onto that suite as its AVR driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.errors import BoardError
from firmware_bridge.protocol import Reading
from tests.common import wait_for

from .avr_sim import SIZE_LINE, AvrSim, build_avr, toolchain_missing

pytestmark = pytest.mark.skipif(toolchain_missing() is not None, reason=str(toolchain_missing()))

FAILSAFE_MS = 5000
WAIT_S = 10.0  # wall-clock bound on waiting for an event: a guard, not a timing
WRAP_START = 0xFFFFFFFF - 3000  # 3 s before hal_millis() wraps
# Timer0's 1 ms: the clock's resolution (hal_idle wakes the core at board_idle_ms()'s deadline,
# counted from the core's own last look at the clock, so no 50 ms BOARD_TICK_MS slack shows).
TICK_MS = 1


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The firmware (ELF) and harness, built once for this module's tests."""
    return build_avr(tmp_path_factory.mktemp("avr"))


@pytest.fixture
def sim(built: tuple[Path, Path, str]) -> Iterator[AvrSim]:
    """A freshly booted simulated board (id avr7, meter at address 1), stopped afterwards."""
    elf, harness, _ = built
    board = AvrSim(harness, elf)
    try:
        board.set_meter(12.6, 1.25, 15.9, 1234)
        board.wait_meter()
        yield board
    finally:
        cpu = board.cpu_seconds() if board.proc.poll() is None else float("nan")
        board.stop()
        print(f"avr-sim: {cpu:.2f} s CPU in {time.monotonic() - board.started:.1f} s")


def relay_times(sim: AvrSim, n: int, state: int) -> list[float]:
    """Simulated ms at which relay n's pin went to state."""
    return [float(e[3]) for e in sim.entries("RELAY") if e[1] == str(n) and e[2] == str(state)]


def wait_log(sim: AvrSim, prefix: str, count: int, timeout: float = 10.0) -> None:
    """Until the harness logged `count` lines starting with prefix."""
    deadline = time.monotonic() + timeout
    while len(sim.entries(prefix)) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"harness logged {sim.entries(prefix)} for {prefix}, wanted {count}")
        time.sleep(0.02)


def reading_until(board: BoardClient, ok: Callable[[Reading], bool],
                  timeout: float = 10.0) -> Reading:
    """READ until the board's reading satisfies ok (the meter is polled every 250 ms)."""
    deadline = time.monotonic() + timeout
    while not ok(reading := board.read()):
        if time.monotonic() > deadline:
            pytest.fail(f"reading never satisfied the check: {reading}")
        time.sleep(0.05)
    return reading


def test_build_with_werror_prints_flash_and_ram(built: tuple[Path, Path, str]) -> None:
    elf, harness, output = built
    sizes = SIZE_LINE.search(output)
    assert sizes, output
    flash, ram = int(sizes[1]), int(sizes[2])
    print(sizes[0])
    assert "-Werror" in output and "-Wconversion" in output  # the core's WARN flags too
    assert 0 < flash <= 128 * 1024 and 0 < ram <= 16 * 1024  # the ATmega1284P's
    assert elf.stat().st_size > 0 and harness.stat().st_size > 0


def test_hello_read_and_relay(sim: AvrSim) -> None:
    board = sim.connect()
    assert board.hello() == BoardInfo("avr7", "consumer", 1, 2, 1.0)
    reading = board.read()
    assert (reading.voltage_v, reading.current_a, reading.power_w) == (12.6, 1.25, 15.9)
    assert (reading.wh_in, reading.wh_out, reading.relays) == (1234.0, 0.0, (False,))
    board.set_relay(0, True)
    assert board.read().relays == (True,)
    wait_log(sim, "RELAY", 2)  # the pin itself: low from reset, then high
    assert [e[1:3] for e in sim.entries("RELAY")] == [["0", "0"], ["0", "1"]]
    board.set_relay(0, False)
    assert board.read().relays == (False,)
    sim.set_meter(12.5, 0.0, 0.0, 1240)
    assert reading_until(board, lambda r: r.wh_in != 1234.0).wh_in == 1240.0


def test_budget_exhaustion_opens_the_relay(sim: AvrSim) -> None:
    board = sim.connect()
    board.hello()
    board.set_budget(0, 2.0)
    # A budgeted relay closes only once the board took its meter's answer (no-meter-for-budget
    # before). The fixture's wait_meter counts the scripted meter's replies, which the core
    # may not have parsed yet on a loaded machine (two clean clones' runs): its own READ says.
    reading_until(board, lambda r: r.wh_in == 1234.0)
    board.set_relay(0, True)
    sim.set_meter(12.6, 1.25, 15.9, 1235)
    assert reading_until(board, lambda r: r.wh_in == 1235.0).budgets == (1.0,)
    sim.set_meter(12.6, 1.25, 15.9, 1236)
    assert sim.next_event("EXHAUSTED", WAIT_S).args == ("0",)
    assert board.read().relays == (False,)
    assert relay_times(sim, 0, 0)[-1] > relay_times(sim, 0, 1)[-1]
    with pytest.raises(BoardError) as refused:
        board.set_relay(0, True)
    assert refused.value.code == 3


def failsafe_delay(sim: AvrSim, board: BoardClient) -> float:
    """Close relay 0, go quiet; simulated ms from the last request's line end to the pin low."""
    board.set_relay(0, True)
    board.heartbeat()
    sim.next_event("FAILSAFE", FAILSAFE_MS / 1000 + WAIT_S)
    assert board.read().relays == (False,)
    opened = relay_times(sim, 0, 0)[-1]
    last_line = max(float(e[1]) for e in sim.entries("LINE-IN") if float(e[1]) < opened)
    print(f"\nfailsafe: relay open {opened - last_line:.3f} simulated ms after the last request")
    return opened - last_line


def test_failsafe_opens_at_5_s_of_simulated_time(sim: AvrSim) -> None:
    board = sim.connect()
    board.hello()
    delay = failsafe_delay(sim, board)
    assert FAILSAFE_MS - TICK_MS <= delay <= FAILSAFE_MS + TICK_MS


def test_meter_unplugged_faults_and_failsafe_keeps_time(sim: AvrSim) -> None:
    board = sim.connect()
    board.hello()
    # A budget-held relay closes only on a working meter (ERR 3 before its first answer, as
    # a loaded run met): wait for readings with values first.
    sim.wait_meter()
    wait_for(lambda: "METER=WAIT" not in board.request("READ").args, what="the meter's answer")
    board.set_budget(0, 5.0)
    board.set_relay(0, True)
    sim.command("unplug")
    assert sim.next_event("METER", WAIT_S).args == ("FAULT",)
    assert board.read().relays == (False,)  # budget-held relay opens: the limit holds
    assert "METER=FAULT" in board.request("READ").args
    board.heartbeat()  # answered within the client's 1 s: nothing waits for the dead meter
    board.set_budget(0, None)  # without a budget the relay may run on a dead meter
    delay = failsafe_delay(sim, board)
    assert FAILSAFE_MS - TICK_MS <= delay <= FAILSAFE_MS + TICK_MS
    sim.set_meter(12.4, 0.0, 0.0, 1300)
    sim.command("plug")
    assert sim.next_event("METER", WAIT_S).args == ("OK",)
    assert board.read().wh_in == 1300.0  # the answer that made it OK carried these values


def test_garbled_meter_answers_are_faults(sim: AvrSim) -> None:
    board = sim.connect()
    board.hello()
    sim.command("garble 1")
    assert sim.next_event("METER", WAIT_S).args == ("FAULT",)
    stats = sim.command("stats")
    assert "answers=0" not in stats  # the meter did answer: the CRC check refused it
    sim.command("garble 0")
    assert sim.next_event("METER", WAIT_S).args == ("OK",)


def test_millisecond_counter_wrap(built: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A build whose clock starts 3 s before 2^32 ms: the failsafe still keeps its 5 s."""
    _, harness, _ = built
    elf, _, _ = build_avr(tmp_path, f"MILLIS_START={WRAP_START}")
    sim = AvrSim(harness, elf)
    try:
        sim.set_meter(12.6, 1.25, 15.9, 1234)
        sim.wait_meter()
        board = sim.connect()
        board.hello()
        delay = failsafe_delay(sim, board)  # closed at ~0.5 s, so the 5 s span the wrap
        assert FAILSAFE_MS - TICK_MS <= delay <= FAILSAFE_MS + TICK_MS
        assert board.read().uptime_s > 5.0
    finally:
        sim.stop()
