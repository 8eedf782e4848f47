"""`gridbid simulate`: its options, and the run that prints progress and the verdict."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

from simulation.plan import MARKETS, Plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gridbid simulate`."""
    plan = Plan()
    parser.add_argument("--producers", type=int, default=plan.producers)
    parser.add_argument("--consumers", type=int, default=plan.consumers)
    parser.add_argument("--hours", type=float, default=plan.hours, help="length of the day")
    parser.add_argument("--start-hour", type=float, default=plan.start_hour,
                        help="time of day the emulator starts at (default midnight)")
    parser.add_argument("--speed", type=float, default=plan.speed,
                        help="emulated seconds per real second (default %(default)s)")
    parser.add_argument("--warmup-hours", type=float, default=plan.warmup_hours,
                        help="trade this long before the measured day (ending at its start): "
                             "everyone's first settlement is then not the day's")
    parser.add_argument("--settle-wh", type=int, default=None,
                        help="the interval market's SETTLE_WH: unsettled Wh at which a "
                             "participant settles before the day's end (default 1000)")
    parser.add_argument("--chain", default=plan.chain,
                        help="chain URI: embedded:// (default, fastest) or anvil://")
    parser.add_argument("--seed", type=int, default=plan.seed,
                        help="participants, weather and loads: one seed is one replayable day")
    parser.add_argument("--market", choices=MARKETS, default=plan.market,
                        help="the interval market (default) or the lot auctions")
    parser.add_argument("--compare", action="store_true",
                        help="run both markets on the same seeded day and print them side "
                             "by side (reports in --out/intervals and --out/lots)")
    parser.add_argument("--out", help="report directory (default var/simulation/<timestamp>)")
    from simulation.chaos.cli import add_arguments as add_chaos_arguments  # --chaos

    add_chaos_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run `gridbid simulate`; 0 when the books reconcile, 1 when they do not."""
    # The driver brings the whole stack and matplotlib: only `gridbid simulate` loads them,
    # not every `gridbid` command whose options are built.
    from simulation.driver import Simulation

    if args.chaos:
        from simulation.chaos.cli import main as chaos

        return chaos(args)
    # Progress lines are the output; the stack's own INFO chatter goes quiet.
    logging.getLogger().setLevel(logging.WARNING)
    out = Path(args.out or f"var/simulation/{datetime.now():%Y%m%d-%H%M%S}")
    if args.producers < 1 or args.consumers < 1 or args.hours <= 0:
        print("gridbid simulate: needs at least one producer, one consumer and some hours")
        return 2
    if args.warmup_hours < 0 or args.warmup_hours * 3600 % 900:
        print("gridbid simulate: --warmup-hours is a whole number of 15-minute intervals")
        return 2
    if args.warmup_hours and args.start_hour % 24:
        print("gridbid simulate: after a warm-up the measured day starts at midnight "
              "(--start-hour 0)")
        return 2
    modes = MARKETS if args.compare else (args.market,)
    figures, ok, code = {}, {}, 0
    for mode in modes:
        plan = Plan(producers=args.producers, consumers=args.consumers, hours=args.hours,
                    start_hour=args.start_hour, warmup_hours=args.warmup_hours,
                    settle_wh=args.settle_wh,
                    speed=args.speed, chain=args.chain,
                    out=out / mode if args.compare else out, seed=args.seed, market=mode)
        books, summary = Simulation(plan, progress=lambda line: print(line, flush=True)).run()
        for check in books.failures():
            print(f"  disagrees: {check.what}: {check.left} vs {check.right} ({check.unit})")
        print(f"summary: {summary}")
        figures[mode], ok[mode] = books.figures, books.ok
        code = code or (0 if books.ok else 1)
    if args.compare:
        from simulation.compare import compare_table

        table = compare_table(figures, ok)
        (out / "compare.md").write_text(table + "\n")
        print(table)
    return code
