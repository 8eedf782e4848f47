"""Command round trips through BoardClient over a pty: Python board emulator vs C firmware.

For each board: 2,000 `READ` requests and 2,000 `RELAY` toggles, sent one after the other
through firmware_bridge.client.BoardClient (real pyserial on a pty), as the bridge sends them.
The emulator is a Microgrid with one consumer, served in this process (it shares the GIL with
the client); the firmware is the host build of firmware_bridge/firmware, compiled into a temp
dir and run as a child process. Goal: p99 <= 10 ms. Run: .venv/bin/python bench/boards.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_bridge.client import BoardClient  # noqa: E402
from firmware_bridge.emulator import Microgrid  # noqa: E402

N = 2000
WARMUP = 100
GOAL_P99_MS = 10.0
QUIET = ("--failsafe-ms", "600000")  # the bench sends no heartbeats between its requests


@contextmanager
def emulator() -> Iterator[str]:
    """The pty device of a consumer board in a started Microgrid."""
    grid = Microgrid(speed=60.0, failsafe_timeout=600.0)
    grid.add_consumer("c1")
    try:
        yield grid.start()["c1"]
    finally:
        grid.stop()


@contextmanager
def firmware() -> Iterator[str]:
    """The pty device of the C firmware's host build, built into a temp dir."""
    if shutil.which("make") is None or shutil.which("gcc") is None:
        raise SystemExit("gcc and make are needed to build the firmware (apt-get install "
                         "build-essential)")
    with tempfile.TemporaryDirectory(prefix="gridbid-fw-") as build:
        subprocess.run(["make", "-s", "-C", str(ROOT / "firmware_bridge" / "firmware"),
                        f"BUILD={build}", "CC=gcc"], check=True)
        master, slave = os.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen([str(Path(build) / "board-host"), "--id", "c1", *QUIET],
                                stdin=master, stdout=master)
        os.close(master)
        try:
            yield os.ttyname(slave)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
            os.close(slave)


def latencies_ms(op: Callable[[int], object]) -> list[float]:
    """Wall-clock ms of N calls of op(i), after WARMUP untimed ones."""
    for i in range(WARMUP):
        op(i)
    times = []
    for i in range(N):
        start = time.perf_counter()
        op(i)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def summary(times: list[float]) -> tuple[float, float, float]:
    """(median, p99, max) in ms."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(0.99 * len(ordered)) - 1], ordered[-1]


def tick_s() -> str:
    """The market's tick interval (web.DEFAULTS["TICK_S"]), as text."""
    try:
        from web import DEFAULTS
    except ImportError:  # the portal's dependencies are not installed: say so, do not guess
        return "TICK_S (web not importable)"
    return f"{DEFAULTS['TICK_S'] * 1000:.0f} ms"


def main() -> None:
    """Measure both boards and print them side by side."""
    rows = []
    for name, board in (("python emulator", emulator), ("C firmware (host)", firmware)):
        with board() as device:
            client = BoardClient(device, timeout=1.0)
            try:
                client.hello()
                reads = latencies_ms(lambda _i, c=client: c.read())
                toggles = latencies_ms(lambda i, c=client: c.set_relay(0, i % 2 == 0))
            finally:
                client.close()
        rows.append((name, "READ", *summary(reads)))
        rows.append((name, "RELAY", *summary(toggles)))

    print(f"BoardClient round trips over a pty, {N} each (goal p99 <= {GOAL_P99_MS:.0f} ms)")
    print(f"{'board':<20} {'request':<8} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}  goal")
    for name, verb, median, p99, worst in rows:
        ok = "ok" if p99 <= GOAL_P99_MS else "MISSED"
        print(f"{name:<20} {verb:<8} {median:>10.3f} {p99:>8.3f} {worst:>8.2f}  {ok}")
    print()
    deal_to_relay()


def deal_to_relay(rounds: int = 5) -> None:
    """Time from an auction's deadline to both relays closed, as the boards see it."""
    import tempfile
    import time as clock_time

    from gridbid_client.local import LocalParty
    from marketplace.clock import ManualClock
    from web import create_app, start_runtime

    manual = ManualClock(start=clock_time.time())
    with tempfile.TemporaryDirectory() as data:
        app = create_app({"DATA_DIR": data, "CHAIN_URI": "embedded://", "SCRYPT_N": 2**10,
                          "CLOCK": manual, "EMULATOR_SPEED": 600.0, "SECRET_KEY": "bench",
                          "DEMO_ACCOUNTS": True})
        runtime = start_runtime(app)
        try:
            market, grid = runtime.market, runtime.microgrid
            # Each participant signs its own deposit, listing approval, bid and closeDeal.
            people = {a["name"]: LocalParty(market, runtime.wallets, runtime.keystore.unlock(
                a["address"], a["passphrase"])) for a in runtime.demo_accounts}
            runtime.ledger.wait(people["bob"].deposit(10**18))
            while runtime.ledger.token_balance(people["alice"].address) < 10 * rounds:
                clock_time.sleep(0.1)
            times = []
            for _ in range(rounds):
                listing = people["alice"].list(5, 1000, 30)
                people["bob"].bid(listing["id"], 1000)
                # The approval signed with the listing is mined before the deadline passes.
                while runtime.txm.pending(people["alice"].address):
                    clock_time.sleep(0.01)
                manual.advance(31)
                start = clock_time.perf_counter()
                while not (grid.reading("pv-alice").relays[0]
                           and grid.reading("load-bob").relays[0]):
                    clock_time.sleep(0.001)
                times.append((clock_time.perf_counter() - start) * 1000)
                deal = market.deals()[0]
                # Relays switch on while the deal still waits for its baseline report's
                # receipt; Close connection is for a delivering deal.
                while market.deal(deal["id"])["status"] == "opening":
                    clock_time.sleep(0.01)
                people["bob"].close(deal["id"])
                while market.deal(deal["id"])["status"] != "closed":
                    clock_time.sleep(0.01)
        finally:
            runtime.stop()
    times.sort()
    print(f"deal event -> relays on (embedded chain, market tick {tick_s()}, {rounds} deals): "
          f"median {times[len(times) // 2]:.0f} ms, max {times[-1]:.0f} ms")


if __name__ == "__main__":
    main()
