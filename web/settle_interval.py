"""`gridbid settle-interval`: send a batch the operator signed, without the operator.

The portal publishes every settlement batch with the operator's EIP-712 Batch signature
(GET /api/intervals/batches). Once the contract's window (anyoneAfterS of block time since
the batch's readings) has passed, anyone holding it may send it: the buyers pay and the
sellers are credited even if the operator never sends it. Read-only without --batch: it lists
the published batches.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from web.verify import VerifyError, _get

PAGE = 100  # batches asked for per GET /api/intervals/batches


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register `gridbid settle-interval` on the main parser."""
    cmd = sub.add_parser("settle-interval",
                         help="send a published, operator-signed interval batch yourself")
    cmd.add_argument("--portal", help="the portal's URL (its batches, /api/chain and /rpc)")
    cmd.add_argument("--rpc", help="a node's JSON-RPC URL (default: the portal's /rpc)")
    cmd.add_argument("--settlement", help="the IntervalSettlement's address (default: the "
                                          "portal's)")
    cmd.add_argument("--batch", type=int, help="the id of the published batch to send")
    cmd.add_argument("--batch-file", help="send the batch in this file (one published entry)")
    cmd.add_argument("--key", help="the sender's key: an Ethereum keystore file or a file "
                                   "holding a hex private key")
    cmd.add_argument("--password-file", help="the keystore's passphrase (default: asked)")
    cmd.set_defaults(handler=settle_command)


def settle_command(args: argparse.Namespace) -> int:
    """List the batches, or send one: 0 when it settled every position, 1 when the contract
    refused some or all, 2 when it could not be sent."""
    try:
        return _settle(args)
    except VerifyError as err:
        print(f"gridbid settle-interval: {err}", file=sys.stderr)
        return 2


def _settle(args: argparse.Namespace) -> int:
    if args.batch is None and not args.batch_file:
        if not args.portal:
            raise VerifyError("give --portal to list its batches, or --batch-file")
        for entry in _batches(args.portal):
            signed = "signed" if entry.get("operator_sig") else "unsigned"
            print(f"batch {entry['id']}: through interval {entry['through_n']}, "
                  f"{len(entry['batch']['positions'])} positions, {entry['status']}, {signed}")
        return 0
    entry = _entry(args)
    facts = _get(args.portal, "/api/chain") if args.portal else {}
    rpc = args.rpc or facts.get("rpc_url")
    settlement = args.settlement or facts.get("contracts", {}).get("IntervalSettlement")
    if not (rpc and settlement):
        raise VerifyError("give --portal, or --rpc with --settlement")
    if not args.key:
        raise VerifyError("give --key: the account that sends the batch (and pays its gas)")
    from marketplace.audit.chain import connect
    from marketplace.audit.settle import SettleError, send_published

    try:
        lines, settled_all = send_published(connect(rpc), settlement, entry, _account(args))
    except SettleError as err:
        raise VerifyError(f"{err} ({rpc})") from err
    for line in lines:
        print(line)
    return 0 if settled_all else 1


def _batches(portal: str) -> list[dict[str, Any]]:
    """Every published batch, oldest first."""
    found, after = [], 0
    while True:
        page = _get(portal, f"/api/intervals/batches?after={after}&limit={PAGE}")
        found += page.get("batches") or []
        if page.get("next") is None:
            return found
        after = page["next"]


def _entry(args: argparse.Namespace) -> dict[str, Any]:
    """The published batch to send: from --batch-file, or batch --batch of the portal."""
    if args.batch_file:
        try:
            return json.loads(Path(args.batch_file).read_text())
        except (OSError, ValueError) as err:
            raise VerifyError(f"cannot read the batch {args.batch_file}: {err}") from err
    if not args.portal:
        raise VerifyError("give --portal with --batch, or --batch-file")
    entry = next((b for b in _batches(args.portal) if b.get("id") == args.batch), None)
    if entry is None:
        raise VerifyError(f"the portal publishes no batch {args.batch}")
    return entry


def _account(args: argparse.Namespace) -> Any:
    """The sender's key, from a keystore file (its passphrase asked) or a hex key file."""
    from eth_account import Account

    try:
        text = Path(args.key).read_text().strip()
    except OSError as err:
        raise VerifyError(f"cannot read the key {args.key}: {err}") from err
    try:
        if text.startswith("{"):
            passphrase = (Path(args.password_file).read_text().rstrip("\n")
                          if args.password_file else getpass.getpass("passphrase: "))
            return Account.from_key(Account.decrypt(json.loads(text), passphrase))
        return Account.from_key(text)
    except (ValueError, TypeError) as err:
        raise VerifyError(f"the key {args.key} cannot be read (wrong passphrase, or not a "
                          "keystore or a hex private key)") from err
