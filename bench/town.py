"""A town on one machine: `gridbid simulate` at 25, 50, 100 and 200 meters, and what limits it.

Each point is one `gridbid simulate` run (its own process, anvil, the interval market, a
quarter producers and three quarters consumers) over the same sunny hours; the table is read
from each run's reconciliation.json (`market.load`, simulation/load.py). The pace is emulated
seconds per wall second while trading, against the ×speed asked for: a day that cannot keep
pace waits at its boundaries (fresh signed readings from every board, then the market's
clearing). The last column says what the day's wall time beyond the pace went to, the
largest named: `clearing` (the market accounting and clearing an interval: its CPU),
`readings` (every board's fresh signed reading at a boundary: board round trips, signing) or
`stepping` (the physics steps and the agents' rounds between boundaries); `(cpu …)` when the
portal and anvil together use ≥ 80 % of the cores. `none`: the day kept the pace asked for.
With `--day DIR` it also prints the figures of a finished full day's report directory.

Run: .venv/bin/python bench/town.py [--meters 25,50,100,200] [--hours 1] [--day DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GRIDBID = ROOT / ".venv" / "bin" / "gridbid"
SPEED = 300.0
CPU_LIMIT = 0.8  # share of the cores at which the machine, not the market, sets the pace


def run_point(meters: int, hours: float, start_hour: float, out: Path) -> dict[str, Any]:
    """One simulated stretch of the day at `meters` boards; its figures."""
    producers = max(1, meters // 4)
    args = [str(GRIDBID), "simulate", "--producers", str(producers),
            "--consumers", str(meters - producers), "--hours", str(hours),
            "--start-hour", str(start_hour), "--speed", str(SPEED), "--chain", "anvil://",
            "--out", str(out)]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    report = out / "reconciliation.json"
    if not report.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        return {"meters": meters, "failed": f"exit {proc.returncode}: {tail}"}
    data = json.loads(report.read_text())
    disagree = [line.strip() for line in proc.stdout.splitlines() if "disagrees:" in line]
    return {"meters": meters, "wall_s": wall, "ok": proc.returncode == 0,
            "checks": len(data["checks"]), "load": data["market"]["load"], "hours": hours,
            "disagree": disagree, "out": str(out)}


def limit_of(point: dict[str, Any]) -> str:
    """What holds the day back at this point (see the module's docstring)."""
    load = point["load"]
    trade = load["phases_s"].get("trade") or 0.0
    paced = point["hours"] * 3600 / SPEED  # the wall time the day needs at the pace asked
    if trade <= 1.1 * paced:
        return "none"
    waits = load.get("boundary_waits_s", {})
    shares = {"clearing": waits.get("clearing", 0.0), "readings": waits.get("readings", 0.0)}
    shares["stepping"] = max(0.0, trade - paced - sum(shares.values()))
    worst = max(shares, key=shares.__getitem__)
    cores = (load["cpu_cores"]["portal"] or 0) + (load["cpu_cores"]["children"] or 0)
    cpu = " (cpu: the cores are busy)" if cores >= CPU_LIMIT * (os.cpu_count() or 1) else ""
    return (f"{worst} {shares[worst] / trade:.0%} of trading"
            f" [{', '.join(f'{k} {v:.0f} s' for k, v in shares.items())}]{cpu}")


def pace_of(point: dict[str, Any]) -> float | None:
    """Emulated seconds per wall second while trading."""
    trade = point["load"]["phases_s"].get("trade")
    return point["hours"] * 3600 / trade if trade else None


def table(points: list[dict[str, Any]]) -> str:
    """The curve as a text table."""
    head = (f"{'meters':>6} {'trips':>5} {'pace':>6} "
            f"{'clear p50':>9} {'p99':>7} {'tick p50':>8} {'p99':>7} "
            f"{'lag p99':>7} {'RSS MB':>6} {'anvil':>5} {'cores':>9} {'fds':>5} {'thr':>4} "
            f"{'gas/blk p99':>11} {'books':>6}  limit")
    lines = [head]
    for p in points:
        if "failed" in p:
            lines.append(f"{p['meters']:>6} failed: {p['failed']}")
            continue
        load = p["load"]
        tick = load["tick_ms"] or {}
        cores = f"{load['cpu_cores']['portal']}+{load['cpu_cores']['children']}"
        lines.append(
            f"{p['meters']:>6} {load['failsafe_trips']:>5} {pace_of(p) or 0:>6.0f} "
            f"{load['clearing_ms']['p50'] or 0:>9.0f} "
            f"{load['clearing_ms']['p99'] or 0:>7.0f} {tick.get('p50') or 0:>8.1f} "
            f"{tick.get('p99') or 0:>7.1f} {load['settlement_lag_wh']['p99'] or 0:>7.0f} "
            f"{load['portal_rss_mb']['max'] or 0:>6.0f} {load['children_rss_mb']['max'] or 0:>5.0f}"
            f" {cores:>9} {load['fds']['max'] or 0:>5.0f} {load['threads']['max'] or 0:>4.0f} "
            f"{load['gas_per_block']['p99'] or 0:>11.0f} {'holds' if p['ok'] else 'FAILS':>6}  "
            f"{limit_of(p)}")
    for p in points:
        for line in p.get("disagree", [])[:5]:
            lines.append(f"  {p['meters']} meters {line}  ({p['out']})")
    return "\n".join(lines)


def day_lines(day: Path) -> str:
    """A finished full day's load figures, from its report directory."""
    data = json.loads((day / "reconciliation.json").read_text())
    load, ok = data["market"]["load"], all(c["ok"] for c in data["checks"])
    tick = load["tick_ms"] or {}
    lines = [f"full day ({day.name}): reconciliation {'holds' if ok else 'FAILS'} "
             f"({len(data['checks'])} checks), {data['total'].get('delivered_wh', 0)} Wh; "
             f"phases {load['phases_s']} s"]
    for what, s, unit in (
        ("clearing (boundary to published interval)", load["clearing_ms"], "ms"),
        ("market tick pass", tick, "ms"),
        ("intervals loop pass", load["loop_pass_ms"].get("intervals"), "ms"),
        ("settlement lag (bought Wh metered, not settled)", load["settlement_lag_wh"], "Wh"),
        ("portal RSS", load["portal_rss_mb"], "MB"),
        ("anvil RSS", load["children_rss_mb"], "MB"),
        ("open descriptors", load["fds"], ""),
        ("machine load average (1 min)", load.get("load_average"), ""),
        ("gas per block", load["gas_per_block"], "gas"),
        ("full garbage collection (holds every thread)",
         (load.get("gc_pause_ms") or {}).get("2"), "ms"),
    ):
        if not s or not s.get("n"):
            continue  # a figure this day's code did not record
        lines.append(f"  {what:<50} p50 {s.get('p50')} p99 {s.get('p99')} max {s.get('max')}"
                     f" {unit} (n {s.get('n')})")
    lines.append(f"  blocks with transactions {load['blocks']}; CPU cores: portal "
                 f"{load['cpu_cores']['portal']}, anvil {load['cpu_cores']['children']}; "
                 f"boards' failsafe trips {load['failsafe_trips']}")
    failed = [c for c in data["checks"] if not c["ok"]]
    lines += [f"  disagrees: {c['what']}: {c['left']} vs {c['right']} ({c['unit']})"
              for c in failed[:5]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", default="25,50,100,200")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--start-hour", type=float, default=10.0)
    parser.add_argument("--day", type=Path, help="a full day's report directory to print too")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "town",
                        help="where each point's report goes (kept, to read a failure)")
    args = parser.parse_args()
    points = []
    load_before = os.getloadavg()[0]
    for meters in (int(m) for m in args.meters.split(",")):
        out = args.out / f"m{meters}"
        shutil.rmtree(out, ignore_errors=True)
        point = run_point(meters, args.hours, args.start_hour, out)
        points.append(point)
        print(f"  {meters} meters: {point.get('wall_s', 0):.0f} s", file=sys.stderr, flush=True)
    print(f"{args.hours:g} h from {args.start_hour:g}:00 at ×{SPEED:g} on anvil, interval "
          f"market, {os.cpu_count()} cores (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after); trips = boards' failsafe trips; pace = emulated "
          "s per wall s while trading; times in ms, lag in Wh, cores = portal+anvil")
    print(table(points))
    if args.day:
        print(day_lines(args.day))
    # A point whose books disagree is a finding the table shows; only a missing report fails.
    return 0 if all("failed" not in p for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
