"""LocalBridgeKeeper: of the workers sharing a store (here two keepers on one PostgreSQL),
only the `local bridge` lease holder runs a child; a clean stop, a death or a stall hands it
over without two children left running. The child is a real process that only sleeps (the
bridge itself is started by tests/web/test_local_bridge_workers.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from marketplace.store import Store
from tests.common import wait_for
from web.runtime import local_bridge
from web.runtime.local_bridge import LocalBridgeKeeper

TTL_S = 0.5


class SleepingChild:
    """A child process standing in for `gridbid bridge`: it runs until stopped."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def stop(self) -> None:
        """Kill and reap it."""
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def keepers(postgres_url, tmp_path):
    """Two workers' keepers on one store; every child they started is stopped after."""
    stores = [Store(postgres_url) for _ in range(2)]
    started: list[SleepingChild] = []

    def start() -> SleepingChild:
        started.append(SleepingChild())
        return started[-1]

    made = []
    for store in stores:
        keeper = LocalBridgeKeeper(store, [], "http://127.0.0.1:1", tmp_path / "token",
                                   tmp_path, TTL_S)
        keeper.start_child = start
        made.append(keeper)
    try:
        yield made, started
    finally:
        for child in started:
            child.stop()
        for store in stores:
            store.close()


def _running(started: list[SleepingChild]) -> list[SleepingChild]:
    return [c for c in started if c.process.poll() is None]


def test_only_the_lease_holder_runs_the_child(keepers):
    (a, b), started = keepers
    for _ in range(3):
        a.step()
        b.step()
    assert len(started) == 1 and len(_running(started)) == 1
    assert a.child is started[0] and b.child is None


def test_a_clean_stop_hands_the_child_over_at_once(keepers):
    (a, b), started = keepers
    a.step()
    b.step()
    a.close()  # stops its child and gives the lease up
    assert _running(started) == []
    b.step()
    assert b.child is started[1] and len(_running(started)) == 1


def test_a_dead_holder_is_replaced_once_its_lease_runs_out(keepers):
    (a, b), started = keepers
    a.step()
    a.child.process.kill()  # its worker died, and its child with it; a steps no more
    b.step()
    assert b.child is None  # not before the lease ran out
    wait_for(lambda: b.step() or b.child is not None, timeout=10, what="b to take it over")
    assert len(started) == 2 and _running(started) == [b.child]


def test_a_stalled_holder_stops_its_child_when_it_finds_the_lease_gone(keepers):
    (a, b), started = keepers
    a.step()
    time.sleep(2 * TTL_S)  # a stalls past its lease, its child still running
    b.step()
    a.step()  # back: the lease is b's now, so a's child goes
    assert a.child is None and _running(started) == [b.child]


def test_a_child_that_exits_is_started_again_not_spun(keepers, monkeypatch):
    (a, _), started = keepers
    monkeypatch.setattr(local_bridge, "RESTART_S", 0.5)
    a.step()
    started[0].process.kill()
    started[0].process.wait(10)
    a.step()  # too soon after its start: not yet
    assert len(started) == 1
    wait_for(lambda: a.step() or len(started) == 2, timeout=10, what="the child restarted")
    assert _running(started) == [started[1]]
