"""The `gridbid` command: run the portal (with the demo accounts unless --no-demo), and more."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from web.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "run":
        return _run(args)
    if args.command == "simulate":
        from simulation.cli import main as simulate

        return simulate(args)
    return args.handler(args)


def parser() -> argparse.ArgumentParser:
    """The `gridbid` command line with every subcommand."""
    parser = argparse.ArgumentParser(prog="gridbid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the portal (chain, emulated boards, market, web)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=5000)
    run.add_argument("--chain", help="chain URI (default anvil://, embedded:// without anvil)")
    run.add_argument("--data-dir", help="where keystores and the store live (default ./var)")
    run.add_argument("--speed", type=float, help="emulator time factor (default 60)")
    run.add_argument("--threads", type=int,
                     help="threads of the server's one worker; each open WebSocket holds one "
                          "(default 250, or GRIDBID_WORKER_THREADS)")
    run.add_argument("--demo", action=argparse.BooleanOptionalAction, default=None,
                     help="seat the demo accounts with emulated boards (default on, unless "
                          "GRIDBID_DEMO_ACCOUNTS says otherwise); they log in from this "
                          "machine only")
    simulate = sub.add_parser(
        "simulate", help="run a day of automatic trading and write a reconciliation report"
    )
    from firmware_bridge.cli import add_commands as add_board_commands
    from geth_private.cli import add_commands as add_chain_commands
    from simulation.cli import add_arguments as add_simulate_arguments
    from web.settle_interval import add_command as add_settle_command
    from web.verify import add_command as add_verify_command

    add_simulate_arguments(simulate)

    add_chain_commands(sub)
    add_board_commands(sub)
    add_verify_command(sub)
    add_settle_command(sub)
    return parser


def run_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings `gridbid run`'s options change; the demo is on unless asked otherwise."""
    overrides: dict[str, object] = {}
    if args.demo is not None or "GRIDBID_DEMO_ACCOUNTS" not in os.environ:
        overrides["DEMO_ACCOUNTS"] = args.demo is not False
    if args.chain:
        overrides["CHAIN_URI"] = args.chain
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.speed:
        overrides["EMULATOR_SPEED"] = args.speed
    if getattr(args, "threads", None) is not None:  # a namespace made by hand may lack it
        overrides["WORKER_THREADS"] = args.threads
    return overrides


def _run(args: argparse.Namespace) -> int:
    from web.serve import bind_address, serve

    overrides = run_overrides(args)
    url = f"http://{args.host}:{args.port}"
    # Where this machine's own bridge process reaches the portal (web/runtime/local_bridge.py).
    if "GRIDBID_LOCAL_BRIDGE_PORTAL" not in os.environ:
        here = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        overrides["LOCAL_BRIDGE_PORTAL"] = f"http://{bind_address(here, args.port)}"

    def banner(runtime: Runtime) -> None:
        # Printed by the worker once its runtime is up (web.serve.post_worker_init).
        print(f"\ngridbid portal at {url}  (chain {runtime.chain_uri})\n")
        _print_accounts(runtime)
        print("\nPress Ctrl+C to stop.\n", flush=True)

    print("gridbid: starting chain, contracts and emulated boards ...", flush=True)
    return serve(overrides, args.host, args.port, banner)


def _print_accounts(runtime: Runtime) -> None:
    """The demo's logins and the admin's; a generated admin passphrase shows on its first run."""
    if runtime.demo_accounts:
        print("Demo accounts (log in from this machine with the name and the passphrase):")
    for acct in runtime.demo_accounts:
        print(f"  {acct['name']:<6} {acct['role']:<9} {acct['address']}  passphrase: "
              f"{acct['passphrase']}  board: {acct['board']}")
    for acct in runtime.admin_accounts:
        # Printed here once and logged nowhere: later runs only have its keystore.
        secret = (f"passphrase: {acct['passphrase']}  (shown this once: note it down)"
                  if acct["passphrase"] else "passphrase: the one printed on its first run")
        print(f"  {acct['name']:<6} {'admin':<9} {acct['address']}  {secret}  (the Admin page)")


if __name__ == "__main__":
    sys.exit(main())
