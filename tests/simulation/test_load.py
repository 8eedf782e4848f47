"""The load figures' arithmetic and the loop timing, on hand-made passes (no stack)."""

from __future__ import annotations

import gc
import threading
import time
from types import SimpleNamespace

from firmware_bridge.heap import settle_heap
from simulation.load import (
    LoadMeter,
    children,
    load_section,
    percentile,
    rss_bytes,
    spread,
)
from web.runtime.loops import Loop


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert spread([0.001, 0.002, 0.010], 1000) == {"n": 3, "p50": 2.0, "p99": 10.0,
                                                     "max": 10.0}


def test_a_loops_passes_are_timed_and_the_machine_sampled() -> None:
    stopped = threading.Event()
    passes = []

    def step() -> None:
        passes.append(time.monotonic())
        if len(passes) >= 3:
            stopped.set()

    loop = Loop("market", step, 0.0, stopped)
    meter = LoadMeter(lambda: 12.5)
    meter.watch_loops([loop])
    loop.run()
    meter.on_transaction(SimpleNamespace(receipt={"blockNumber": 7, "gasUsed": 30_000}))
    meter.on_transaction(SimpleNamespace(receipt={"blockNumber": 7, "gasUsed": 21_000}))
    meter.on_transaction(SimpleNamespace(receipt=None))  # not mined: nothing to count
    meter.on_board_event("b1", "FAILSAFE", ())
    meter.boundary_wait("clearing", 0.25)
    meter.boundary_wait("readings", 0.5)
    # One sample by hand, as the sampler thread would take it each second.
    meter.samples.append({"t": 0.0, "rss": rss_bytes(), "children_rss": 0, "threads": 1,
                          "fds": 3, "unsettled_wh": 12.5, "loadavg": 3.5})
    figures = meter.figures()
    assert figures["tick_ms"]["n"] == 3
    assert figures["gas_per_block"] == {"n": 1, "p50": 51_000, "p99": 51_000, "max": 51_000}
    assert figures["clearing_ms"]["p50"] == 250.0
    assert figures["boundary_waits_s"] == {"readings": 0.5, "clearing": 0.2}
    assert figures["settlement_lag_wh"]["max"] == round(12.5)
    assert figures["failsafe_trips"] == 1
    assert figures["load_average"]["max"] == 3.5
    assert figures["portal_rss_mb"]["max"] > 10
    lines = load_section(figures)
    assert any("`market` loop pass" in line for line in lines)
    assert load_section(None) == []


def test_the_sampler_sees_this_process_and_its_children() -> None:
    meter = LoadMeter(lambda: 3.0)
    meter.start()
    try:
        while not meter.samples:
            time.sleep(0.1)
    finally:
        meter.stop()
    sample = meter.samples[0]
    assert sample["rss"] > 0 and sample["fds"] > 0 and sample["unsettled_wh"] == 3.0
    assert sample["loadavg"] >= 0.0


def test_full_collections_are_timed_while_sampling() -> None:
    meter = LoadMeter()
    meter.start()
    try:
        gc.collect()
    finally:
        meter.stop()
    gc.collect()  # after stop(): not counted
    assert len(meter.gc_pauses[2]) == 1
    assert meter.figures()["gc_pause_ms"]["2"]["n"] == 1
    assert isinstance(children(), list)


def test_the_heap_alive_at_start_up_is_left_out_of_later_collections() -> None:
    alive = [[n] for n in range(50_000)]  # long-lived objects, as the stack's are
    try:
        frozen = settle_heap()
        # At most that many stay frozen: another thread of this process may free some since.
        assert len(alive) <= gc.get_freeze_count() <= frozen
        # A full collection now walks what was made since, not the frozen heap.
        assert all(gc.is_tracked(a) for a in alive[:3])
        assert not any(a is alive[0] for a in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
