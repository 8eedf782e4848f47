"""What a day costs the machine: loop passes, clearing, settlement lag, memory, gas per block.

`LoadMeter` times every pass of the runtime's background loops (the market's tick, the
interval market's step, …) by wrapping each loop's step, notes how long each interval's
clearing took (from the clock reaching the boundary to its `interval` publication, told by
the boundary sync), and samples once a wall second: the Wh metered and accounted but not yet
settled on chain (the settlement lag), the resident memory of this process (the portal's
runtime runs in it) and of its children (the chain node), threads, descriptors, CPU time and
the machine's 1-minute load average (what else wanted the cores: a shared machine's figures
mean little without it). It also times the interpreter's garbage collections: a full one
holds every thread of the process (heartbeats, board lines, the market) for its length.
Gas per block comes from the receipts the journal sees. `figures()` sums it up.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SAMPLE_S = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0–100, nearest rank) of values; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, Any]:
    """n, p50, p99 and max of values (times scale, rounded)."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, digits)
    return {"n": len(values), "p50": r(percentile(values, 50)), "p99": r(percentile(values, 99)),
            "max": r(max(values, default=None))}


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def children(pid: int | str = "self") -> list[int]:
    """The direct child processes of pid (the chain node, a bridge process …)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """Times a runtime's loops and samples its lag and memory while the day runs."""

    def __init__(self, unsettled_wh: Callable[[], float] | None = None):
        self.unsettled_wh = unsettled_wh
        self.passes: dict[str, list[float]] = {}
        self.waits_s: dict[str, list[float]] = {"readings": [], "clearing": []}
        self.samples: list[dict[str, float]] = []
        self.block_gas: dict[int, int] = {}
        self.phases_s: dict[str, float] = {}  # wall seconds of the day's phases (the driver's)
        self.board_events: dict[str, int] = {}  # FAILSAFE, EXHAUSTED … by verb
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wall0 = time.monotonic()
        self._cpu0 = {"self": cpu_seconds("self")}
        # Seconds of each collection by generation (keys fixed: the callback only appends).
        self.gc_pauses: dict[int, list[float]] = {g: [] for g in range(3)}
        self._gc_started = 0.0
        self.frozen_objects = 0  # objects settle_heap() took out of the collections

    def watch_loops(self, loops: Iterable[Any]) -> None:
        """Time every pass of each loop from now on (its step replaced by a timed one)."""
        for loop in loops:
            loop.step = self._timed(loop.name, loop.step)

    def start(self) -> None:
        """Sample once a wall second until stop()."""
        self._wall0 = time.monotonic()
        self._cpu0 = {"self": cpu_seconds("self"),
                      **{str(c): cpu_seconds(c) for c in children()}}
        self._thread = threading.Thread(target=self._run, name="load-meter", daemon=True)
        self._thread.start()
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        """Stop sampling (the figures keep what was sampled)."""
        self._stop.set()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def boundary_wait(self, kind: str, seconds: float) -> None:
        """A boundary waited seconds: for every board's fresh signed reading ("readings"),
        or from the clock reaching it to the market's publication of it ("clearing")."""
        with self._lock:
            self.waits_s.setdefault(kind, []).append(seconds)

    def on_transaction(self, record: Any) -> None:
        """A mined transaction's gas, by block (a journal hook)."""
        receipt = record.receipt
        if receipt is None or receipt.get("blockNumber") is None:
            return
        with self._lock:
            block = int(receipt["blockNumber"])
            self.block_gas[block] = self.block_gas.get(block, 0) + int(receipt["gasUsed"])

    def on_board_event(self, board_id: str, verb: str, args: tuple[str, ...]) -> None:
        """A board's news (a bridge event listener): FAILSAFE means a heartbeat came late."""
        with self._lock:
            self.board_events[verb] = self.board_events.get(verb, 0) + 1

    def figures(self) -> dict[str, Any]:
        """The day's load figures: times in ms, Wh, MB, gas."""
        with self._lock:
            passes = {name: spread(times, 1000) for name, times in self.passes.items()}
            clearing = spread(self.waits_s["clearing"], 1000)
            readings = spread(self.waits_s["readings"], 1000)
            waited = {kind: round(sum(times), 1) for kind, times in self.waits_s.items()}
            gas = list(self.block_gas.values())
            samples = list(self.samples)
        lag = [s["unsettled_wh"] for s in samples if s.get("unsettled_wh") is not None]
        wall = time.monotonic() - self._wall0
        return {
            # The market's tick: one `market` loop, or (split by request-never-waits) its
            # settlement pass, the one that grows with the town.
            "loop_pass_ms": passes, "tick_ms": passes.get("market") or passes.get("settlement"),
            "clearing_ms": clearing, "readings_ms": readings, "boundary_waits_s": waited,
            "settlement_lag_wh": spread(lag, 1, 0),
            "portal_rss_mb": spread([s["rss"] for s in samples], 1 / 2**20, 0),
            "children_rss_mb": spread([s["children_rss"] for s in samples], 1 / 2**20, 0),
            "threads": spread([s["threads"] for s in samples], 1, 0),
            "load_average": spread([s["loadavg"] for s in samples], 1, 1),
            "fds": spread([s["fds"] for s in samples], 1, 0),
            "gas_per_block": spread(gas, 1, 0), "blocks": len(gas),
            "cpu_cores": {"portal": round(self._cpu("self") / wall, 2) if wall else None,
                          "children": round(self._children_cpu() / wall, 2) if wall else None},
            "wall_s": round(wall, 1), "phases_s": dict(self.phases_s),
            "failsafe_trips": self.board_events.get("FAILSAFE", 0),
            "gc_pause_ms": {str(g): spread(t, 1000) for g, t in sorted(self.gc_pauses.items())},
            "frozen_objects": self.frozen_objects,
        }

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """A collection starting or ending (gc.callbacks; the collecting thread holds the GIL,
        so no lock is needed and none may be taken: it could be held by the interrupted code)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses[info["generation"]].append(time.perf_counter() - self._gc_started)

    def _timed(self, name: str, step: Callable[[], object]) -> Callable[[], object]:
        times = self.passes.setdefault(name, [])

        def timed() -> object:
            started = time.monotonic()
            try:
                return step()
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    times.append(elapsed)
        return timed

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            kids = children()
            sample = {"t": time.monotonic() - self._wall0, "rss": rss_bytes(),
                      "children_rss": sum(rss_bytes(c) for c in kids),
                      "threads": threading.active_count(), "fds": _open_fds(),
                      "loadavg": os.getloadavg()[0]}
            for kid in kids:
                self._cpu0.setdefault(str(kid), 0.0)
            if self.unsettled_wh is not None:
                try:
                    sample["unsettled_wh"] = self.unsettled_wh()
                except Exception:  # a store busy closing: this second has no lag figure
                    pass
            with self._lock:
                self.samples.append(sample)

    def _cpu(self, pid: str) -> float:
        return max(0.0, cpu_seconds(pid) - self._cpu0.get(pid, 0.0))  # 0 once it is gone

    def _children_cpu(self) -> float:
        return sum(self._cpu(pid) for pid in self._cpu0 if pid != "self")




def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def load_section(load: dict[str, Any] | None) -> list[str]:
    """summary.md's lines on what the day cost the machine (none without figures)."""
    if not load:
        return []

    def row(what: str, s: dict[str, Any] | None, unit: str) -> str:
        if not s or not s.get("n"):
            return f"| {what} | – | – | – | 0 |"
        return f"| {what} ({unit}) | {s['p50']} | {s['p99']} | {s['max']} | {s['n']} |"

    lines = ["## What the day cost the machine", "",
             "| figure | p50 | p99 | max | samples |", "|---|---:|---:|---:|---:|",
             row("clearing: boundary to published interval", load["clearing_ms"], "ms"),
             row("boundary: every board's fresh signed reading", load.get("readings_ms"), "ms")]
    for name, s in sorted(load["loop_pass_ms"].items()):
        lines.append(row(f"`{name}` loop pass", s, "ms"))
    lines += [row("settlement lag: bought Wh metered, not yet settled", load["settlement_lag_wh"],
                  "Wh"),
              row("portal process RSS", load["portal_rss_mb"], "MB"),
              row("chain node (children) RSS", load["children_rss_mb"], "MB"),
              row("threads", load["threads"], "count"),
              row("open descriptors", load["fds"], "count"),
              row("machine load average (1 min)", load.get("load_average"), "runnable"),
              row("gas per block (blocks with transactions)", load["gas_per_block"], "gas"),
              *[row(f"garbage collection, generation {g} (holds every thread)", s, "ms")
                for g, s in (load.get("gc_pause_ms") or {}).items()], "",
              f"Boards' failsafe trips (a heartbeat later than the board's timeout): "
              f"{load['failsafe_trips']}.", "",
              f"CPU over {load['wall_s']} s of wall time: portal {load['cpu_cores']['portal']} "
              f"cores, chain node {load['cpu_cores']['children']} cores.", ""]
    return lines
