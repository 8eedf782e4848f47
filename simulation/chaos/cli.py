"""`gridbid simulate --chaos`: its options and the run that prints each fault and the verdict."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

from simulation.chaos import FAULTS_EVERY_S, KINDS, MINUTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The chaos day's own options (the participants, --speed, --seed and --out are shared)."""
    parser.add_argument("--chaos", action="store_true",
                        help="a day with faults: every part a process of its own, one SIGKILLed "
                             "and restarted every --faults-every emulated seconds")
    parser.add_argument("--minutes", type=float, default=MINUTES,
                        help="--chaos: emulated minutes of trading (default %(default)s)")
    parser.add_argument("--faults-every", type=float, default=FAULTS_EVERY_S,
                        metavar="S", help="--chaos: emulated seconds between faults "
                                          "(default %(default)s)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="--chaos: the kinds of part killed (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    """Run the chaos day; 0 when every check holds and every killed part came back."""
    # The stack (web3, psycopg, the portal's modules) loads only for a chaos day.
    from simulation.chaos.day import ChaosDay, ChaosPlan
    from simulation.chaos.report import write_report
    from simulation.chaos.stack import Layout

    logging.getLogger().setLevel(logging.WARNING)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        print(f"gridbid simulate --chaos: --kinds takes some of {', '.join(KINDS)}")
        return 2
    if args.minutes <= 0 or args.faults_every <= 0 or args.speed <= 0:
        print("gridbid simulate --chaos: --minutes, --faults-every and --speed must be positive")
        return 2
    out = Path(args.out or f"var/simulation/chaos-{datetime.now():%Y%m%d-%H%M%S}")
    layout = Layout(producers=args.producers, consumers=args.consumers, speed=args.speed)
    plan = ChaosPlan(minutes=args.minutes, faults_every_s=args.faults_every, layout=layout,
                     kinds=kinds, seed=args.seed, out=out)
    result = ChaosDay(plan, progress=lambda line: print(line, flush=True)).run()
    report = write_report(plan, result, out)
    for check in result.checks:
        if not check.ok:
            print(f"  disagrees: {check.what}: {check.left} vs {check.right} ({check.unit})")
    print(f"report: {report}")
    return 0 if result.ok else 1
