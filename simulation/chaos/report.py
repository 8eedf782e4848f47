"""The chaos day's report: chaos.json with everything, chaos.md to read in a minute."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from simulation.chaos.day import ChaosPlan, ChaosResult


def write_report(plan: ChaosPlan, result: ChaosResult, out: Path) -> Path:
    """Write chaos.json and chaos.md under out; the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    failed = [c for c in result.checks if not c.ok]
    data = {
        "ok": result.ok,
        "plan": {"minutes": plan.minutes, "faults_every_s": plan.faults_every_s,
                 "seed": plan.seed, "kinds": list(plan.kinds), "layout": asdict(plan.layout)},
        "timing": result.timing,
        "faults": [f.view() for f in result.faults],
        "supervisor_restarts": result.supervisor,
        "orders": {"acknowledged": len(result.agents.acks), "refused": result.agents.refused,
                   "retries": result.agents.retries},
        "rows": result.rows,
        "batches": result.batches,
        "checks": [{**asdict(c), "ok": c.ok} for c in result.checks],
    }
    (out / "chaos.json").write_text(json.dumps(data, indent=1, default=str))
    lines = [f"# A day with faults: {'every check holds' if result.ok else 'DISAGREES'}", "",
             f"{plan.minutes:g} emulated minutes at ×{plan.layout.speed:g}, a fault every "
             f"{plan.faults_every_s:g} emulated s (seed {plan.seed}); "
             f"{len(result.agents.acks)} orders acknowledged, {result.agents.retries} calls "
             f"retried on another worker, {len(result.checks)} checks, {len(failed)} failed.", "",
             "| # | kind | part | at (emulated h) | restarted (s) | answers (s) | "
             "clears again (s) | settles again (s) | note |", "|" + "---|" * 9]
    for i, f in enumerate(result.faults, 1):
        lines.append(f"| {i} | {f.kind} | {f.part} | {f.emulated_at:.2f} | "
                     f"{f.restarted_after_s} | {_s(f.answered_after_s)} | "
                     f"{_s(f.cleared_after_s)} | {_s(f.settled_after_s)} | {f.note} |")
    if result.supervisor:
        lines += ["", "Restarted by the supervisor (exited by themselves): " + ", ".join(
            f"{r['part']} (exit {r['exit']}) at {r['hour']:.2f} h" for r in result.supervisor)]
    if result.rows:
        keys = list(result.rows[0])
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in result.rows]
    if failed:
        lines += ["", "## Disagreements", ""]
        lines += [f"- {c.what}: {c.left} vs {c.right} {c.unit} {c.note}" for c in failed]
    lines += ["", f"Settle batches in the store: {result.batches}", "",
              f"Times (wall s): {result.timing}", ""]
    path = out / "chaos.md"
    path.write_text("\n".join(lines))
    return path


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"
