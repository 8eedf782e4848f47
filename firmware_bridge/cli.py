"""`gridbid emulate`: emulated meter boards on ptys (or loopback sockets) for a bridge to open."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from urllib.parse import urlparse

from firmware_bridge.emulator import Microgrid

PARENT_CHECK_S = 0.5  # how often a bridge started with --parent looks for its parent


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the emulate subcommand on the main parser."""
    emulate = sub.add_parser("emulate", help="run emulated meter boards and print their ports")
    emulate.add_argument("--producers", type=int, default=1, help="PV + battery boards")
    emulate.add_argument("--consumers", type=int, default=1, help="load boards")
    emulate.add_argument("--speed", type=float, default=60.0, help="emulated time factor")
    emulate.add_argument("--start-hour", type=float, default=11.0)
    emulate.add_argument("--pv-peak-w", type=float, default=400.0)
    emulate.add_argument("--load-w", type=float, default=240.0)
    emulate.add_argument("--sky", choices=["clear", "clouds"], default="clear",
                         help="irradiance profile of the PV emulators")
    emulate.add_argument("--board", action="append", metavar="ID:KIND",
                         help="a board by name, e.g. pv-alice:producer (instead of the counts)")
    emulate.add_argument("--socket", action="store_true", help="serve on 127.0.0.1 ports")
    emulate.add_argument("--link-dir", help="also make stable links DIR/<board id>")
    emulate.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl+C)")
    emulate.set_defaults(handler=emulate_command)
    bridge = sub.add_parser("bridge", help="serve this machine's boards to a portal elsewhere")
    bridge.add_argument("--board", action="append", default=[], metavar="URI",
                        help="a board: emulator://ID?kind=producer, /dev/ttyUSB0, "
                             "socket://host:port or pzem:///dev/ttyUSB1?unit=1 (repeat)")
    bridge.add_argument("--port", action="append", default=[],
                        help="a board's serial port (as --board; repeat for several boards)")
    bridge.add_argument("--portal", action="append", required=True,
                        help="the portal's URL, e.g. https://portal.example (TLS: docs/BRIDGES.md);"
                             " repeat for each worker: the bridge moves to the next if one dies")
    bridge.add_argument("--bridge-id", required=True,
                        help="the id the portal's admin registered this bridge under")
    bridge.add_argument("--token-file",
                        help="file holding this bridge's token (else $GRIDBID_BRIDGE_TOKEN)")
    bridge.add_argument("--data-dir", default="var", help="where this machine's meter keys live")
    bridge.add_argument("--wait", action="store_true",
                        help="keep trying until the portal accepts (a bridge started first)")
    bridge.add_argument("--node", nargs="?", const="", metavar="URI",
                        help="report this machine's clique signer node to the portal: the "
                             "geth:// URI `gridbid chain join` runs with on --data-dir (the "
                             "default when one runs there)")
    bridge.add_argument("--sealing-toggle", action="store_true",
                        help="with --node: let the portal's wallet view start and stop the "
                             "node's sealing (a stop that breaks the quorum is still refused)")
    bridge.add_argument("--parent", type=int, metavar="PID",
                        help="stop when this process ends (a portal's own local bridge)")
    bridge.set_defaults(handler=bridge_command)


def emulate_command(args: argparse.Namespace) -> int:
    """Start the boards, print `board-id kind device` lines, serve until stopped."""
    if args.board:
        boards = [b.partition(":")[::2] for b in args.board]
    else:
        boards = [(f"pv-{n}", "producer") for n in range(1, args.producers + 1)]
        boards += [(f"load-{n}", "consumer") for n in range(1, args.consumers + 1)]
    if not boards or any(not name or kind not in ("producer", "consumer") for name, kind in boards):
        print("gridbid emulate: give boards as ID:producer or ID:consumer, or positive counts")
        return 2
    grid = Microgrid(speed=args.speed, start_hour=args.start_hour)
    kinds = dict(boards)
    for name, kind in boards:
        if kind == "producer":
            grid.add_producer(name, pv_peak_w=args.pv_peak_w, sky=args.sky)
        else:
            grid.add_consumer(name, load_w=args.load_w)
    # The handler comes before the board lines: whoever reads them may stop us at once.
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    devices = grid.start(args.link_dir, "socket" if args.socket else "pty")
    for board_id, device in devices.items():
        print(f"{board_id} {kinds[board_id]} {device}", flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        grid.stop()
    return 0


def bridge_command(args: argparse.Namespace) -> int:
    """Attach the ports, hold their meter keys here, and serve the portal until stopped."""
    from pathlib import Path

    from firmware_bridge.board_uri import parse_board_uri
    from firmware_bridge.errors import BridgeError
    from firmware_bridge.heap import settle_heap
    from firmware_bridge.remote import run_bridge
    from geth_private.keystore import MachineKeys

    boards = args.board + args.port
    if not boards:
        print("gridbid bridge: give at least one --board URI (or --port)")
        return 2
    try:
        for board in boards:
            parse_board_uri(board)
    except BridgeError as err:
        print(f"gridbid bridge: {err}")
        return 2
    token = (Path(args.token_file).read_text() if args.token_file
             else os.environ.get("GRIDBID_BRIDGE_TOKEN", "")).strip()
    if not token:
        print("gridbid bridge: give the bridge's token with --token-file or GRIDBID_BRIDGE_TOKEN")
        return 2
    for portal in args.portal:
        if urlparse(portal).scheme != "https" and not _loopback(portal):
            print(f"gridbid bridge: warning: {portal} is not https://, so the token and the"
                  " readings cross the network readable by anyone on the way", flush=True)
    from geth_private.cli import running_node

    node = None
    # A geth node `gridbid chain join` runs on this data directory is reported unasked.
    if args.node is not None or running_node(Path(args.data_dir), "geth"):
        from firmware_bridge.own_node import attach_own_node
        from geth_private.errors import ChainError

        try:
            node = attach_own_node(args.node or None, args.data_dir, toggles=args.sealing_toggle)
        except ChainError as err:
            print(f"gridbid bridge: {err}")
            return 2
        print(f"node {node.where}: signer {node.status().get('signer')}, sealing toggle "
              f"{'allowed' if args.sealing_toggle else 'refused'}", flush=True)
    elif args.sealing_toggle:
        print("gridbid bridge: --sealing-toggle needs --node (the node it toggles)")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.parent:
        threading.Thread(target=_stop_with, args=(args.parent, stop), daemon=True).start()
    data = Path(args.data_dir)
    try:
        print(f"serving {', '.join(boards)} to {', '.join(args.portal)}", flush=True)
        keys = MachineKeys(data / "meters")

        def meter_key(board_id: str):  # noqa: ANN202 (a LocalAccount)
            # Printed so the admin can register exactly these (board id, meter) pairs.
            key = keys.get(board_id)
            print(f"board {board_id}: meter {key.address}", flush=True)
            return key

        settle_heap()  # imports (web3, eth-account) stay for the bridge's life
        run_bridge(boards, args.portal, args.bridge_id, token, meter_key, stop,
                   data / "odometer", wait=args.wait, node=node)
    except KeyboardInterrupt:
        pass
    except BridgeError as err:
        print(f"gridbid bridge: {err}")
        return 1
    return 0


def _stop_with(parent: int, stop: threading.Event) -> None:
    """Set stop once the parent process is gone (this bridge was re-parented), even when it
    was killed and could not stop us itself."""
    while not stop.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            print(f"gridbid bridge: parent {parent} ended; stopping", flush=True)
            stop.set()


def _loopback(url: str) -> bool:
    """Whether a URL names this machine (where plain http crosses no network)."""
    return urlparse(url).hostname in ("localhost", "127.0.0.1", "::1")
