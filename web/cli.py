"""The `gridbid` command: run the portal on the embedded default with demo accounts."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="gridbid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the portal (chain, emulated boards, market, web)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=5000)
    run.add_argument("--chain", help="chain URI (default anvil://, embedded:// without anvil)")
    run.add_argument("--data-dir", help="where keystores and the store live (default ./var)")
    run.add_argument("--speed", type=float, help="emulator time factor (default 60)")
    simulate = sub.add_parser(
        "simulate", help="run a day of automatic trading and write a reconciliation report"
    )
    from firmware_bridge.cli import add_commands as add_board_commands
    from geth_private.cli import add_commands as add_chain_commands
    from simulation.cli import add_arguments as add_simulate_arguments

    add_simulate_arguments(simulate)

    add_chain_commands(sub)
    add_board_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "run":
        return _run(args)
    if args.command == "simulate":
        from simulation.cli import main as simulate

        return simulate(args)
    return args.handler(args)


def _run(args: argparse.Namespace) -> int:
    from web import create_app, start_runtime
    from web.extensions import socketio

    overrides = {}
    if args.chain:
        overrides["CHAIN_URI"] = args.chain
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.speed:
        overrides["EMULATOR_SPEED"] = args.speed
    app = create_app(overrides)
    print("gridbid: starting chain, contracts and emulated boards ...", flush=True)
    runtime = start_runtime(app)
    url = f"http://{args.host}:{args.port}"
    print(f"\ngridbid portal at {url}  (chain {runtime.chain_uri})\n")
    print("Demo accounts (log in with the name or address and the passphrase):")
    for acct in runtime.demo_accounts:
        print(f"  {acct['name']:<6} {acct['role']:<9} {acct['address']}  passphrase: "
              f"{acct['passphrase']}  board: {acct['board']}")
    for acct in runtime.admin_accounts:
        print(f"  {acct['name']:<6} {'admin':<9} {acct['address']}  passphrase: "
              f"{acct['passphrase']}  (the Admin page)")
    print("\nPress Ctrl+C to stop.\n", flush=True)
    try:
        socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
