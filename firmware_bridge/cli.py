"""`gridbid emulate`: emulated meter boards on ptys (or loopback sockets) for a bridge to open."""

from __future__ import annotations

import argparse
import signal
import time

from firmware_bridge.emulator import Microgrid


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the emulate subcommand on the main parser."""
    emulate = sub.add_parser("emulate", help="run emulated meter boards and print their ports")
    emulate.add_argument("--producers", type=int, default=1, help="PV + battery boards")
    emulate.add_argument("--consumers", type=int, default=1, help="load boards")
    emulate.add_argument("--speed", type=float, default=60.0, help="emulated time factor")
    emulate.add_argument("--start-hour", type=float, default=11.0)
    emulate.add_argument("--pv-peak-w", type=float, default=400.0)
    emulate.add_argument("--load-w", type=float, default=240.0)
    emulate.add_argument("--socket", action="store_true", help="serve on 127.0.0.1 ports")
    emulate.add_argument("--link-dir", help="also make stable links DIR/<board id>")
    emulate.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl+C)")
    emulate.set_defaults(handler=emulate_command)


def emulate_command(args: argparse.Namespace) -> int:
    """Start the boards, print `board-id kind device` lines, serve until stopped."""
    if args.producers < 0 or args.consumers < 0 or args.producers + args.consumers == 0:
        print("gridbid emulate: give at least one producer or consumer")
        return 2
    grid = Microgrid(speed=args.speed, start_hour=args.start_hour)
    kinds = {}
    for n in range(1, args.producers + 1):
        grid.add_producer(f"pv-{n}", pv_peak_w=args.pv_peak_w)
        kinds[f"pv-{n}"] = "producer"
    for n in range(1, args.consumers + 1):
        grid.add_consumer(f"load-{n}", load_w=args.load_w)
        kinds[f"load-{n}"] = "consumer"
    devices = grid.start(args.link_dir, "socket" if args.socket else "pty")
    for board_id, device in devices.items():
        print(f"{board_id} {kinds[board_id]} {device}", flush=True)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        grid.stop()
    return 0
