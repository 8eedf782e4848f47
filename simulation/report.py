"""The simulated day's report: four PNG plots, reconciliation.json and a one-minute summary.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulation.plan import Plan
from simulation.plots import draw_plots
from simulation.reconcile import Reconciliation
from simulation.summary import summary


def write_report(
    plan: Plan,
    books: Reconciliation,
    samples: list[dict[str, Any]],
    names: dict[str, str],
    hour_of: Callable[[float], float],
    wall_s: float,
) -> Path:
    """Write the plots, the JSON and summary.md into plan.out; the summary's path."""
    out = Path(plan.out)
    draw_plots(out, plan.participants, books, samples, names, hour_of)
    if books.figures.get("boundaries"):  # the physics at every boundary: metrics re-derivable
        (out / "physics.json").write_text(json.dumps(books.figures.pop("boundaries")))
    (out / "reconciliation.json").write_text(json.dumps({
        "rows": books.rows, "total": books.total, "bus": books.bus,
        "checks": [{**asdict(c), "diff": c.diff, "ok": c.ok} for c in books.checks],
        "deals": [{k: v for k, v in d.items() if k != "steps"} for d in books.deals],
        "market": books.figures,
    }, indent=1, default=str))
    path = out / "summary.md"
    path.write_text(summary(plan, books, names, hour_of, samples, wall_s))
    return path
