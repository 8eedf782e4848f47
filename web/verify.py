"""`gridbid verify`: audit a portal's published book and intervals against the chain's events.

The portal is asked only for what the chain cannot say: the book (signed offers and bids, the
auctions' ends), the interval market's published intervals and where the contracts are.
Everything else (the chain id, the token the escrow settles in, every event and the readings
in the transactions) is read from a node.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

PAGE = 100  # listings asked for per GET /api/book
HISTORY = 672  # intervals asked for in GET /api/intervals (its most: a week of 15 minutes)


class VerifyError(Exception):
    """The audit could not run (a portal or node that does not answer, a malformed book)."""


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register `gridbid verify` on the main parser."""
    verify = sub.add_parser("verify", help="audit a portal's bid book against the chain's events")
    verify.add_argument("--portal", help="the portal's URL (its /api/book and /api/chain)")
    verify.add_argument("--rpc", help="a node's JSON-RPC URL (default: the portal's /rpc)")
    verify.add_argument("--book", help="read the book from this file instead of the portal")
    verify.add_argument("--save-book", help="write the book the portal served to this file")
    verify.add_argument("--token", help="the EnergyToken's address (default: the portal's)")
    verify.add_argument("--escrow", help="the EnergyEscrow's address (default: the portal's)")
    verify.add_argument("--settlement",
                        help="the IntervalSettlement's address (default: the portal's)")
    verify.add_argument("--intervals", help="read the published intervals from this file "
                                            "instead of the portal")
    verify.add_argument("--save-intervals",
                        help="write the intervals the portal published to this file")
    verify.add_argument("--meter-accuracy", type=float, default=0.02,
                        help="bus check: the meters' accuracy (default 0.02)")
    verify.add_argument("--floor-wh", type=int, default=2,
                        help="bus check: Wh of slack per period (default 2)")
    verify.set_defaults(handler=verify_command)


def verify_command(args: argparse.Namespace) -> int:
    """Run the audit; print each disagreement and a summary; 0 when all agree, 1 when not,
    2 when the audit could not run."""
    try:
        report = run(args)
    except VerifyError as err:
        print(f"gridbid verify: {err}", file=sys.stderr)
        return 2
    for finding in report.findings:
        print(finding)
    print(report.summary())
    return 1 if report.findings else 0


def run(args: argparse.Namespace) -> Any:
    """The audit's Report for the command's arguments."""
    from web3.exceptions import Web3Exception

    from marketplace.audit.book import BookError, parse_book
    from marketplace.audit.chain import ChainReader, connect
    from marketplace.audit.intervals import Domains
    from marketplace.audit.report import Tolerance, audit, txs_to_decode

    facts = _get(args.portal, "/api/chain") if args.portal else {}
    rpc = args.rpc or facts.get("rpc_url")
    token = args.token or facts.get("contracts", {}).get("EnergyToken")
    escrow = args.escrow or facts.get("contracts", {}).get("EnergyEscrow")
    settlement = args.settlement or facts.get("contracts", {}).get("IntervalSettlement")
    if not (rpc and token and escrow):
        raise VerifyError("give --portal, or --rpc with --token and --escrow")
    pages = _read_book(args)
    try:
        book = parse_book(pages)
    except BookError as err:
        raise VerifyError(f"the book is malformed: {err}") from err
    reader = ChainReader(connect(rpc), token, escrow, settlement)
    try:
        trouble = _chain_findings(reader, facts)
        events = reader.events()
        calls, chain_id = reader.calls(txs_to_decode(events)), reader.chain_id()
    except (OSError, ValueError, Web3Exception) as err:  # includes requests' errors
        raise VerifyError(f"the node at {rpc} did not answer as a gridbid chain: {err}") from err
    report = audit(events, calls, book, chain_id, reader.token.address, reader.escrow.address,
                   Tolerance(args.meter_accuracy, args.floor_wh))
    if reader.settlement is not None:
        report = _audit_intervals(args, report, events, Domains(
            chain_id, reader.settlement.address, reader.token.address,
            _max_loss_bps(reader.settlement)))
    return replace(report, findings=tuple(trouble) + report.findings)


def _max_loss_bps(settlement: Any) -> int:
    """The settlement's line loss bound (maxLineLossBps), the default for an older build."""
    from web3.exceptions import Web3Exception

    from marketplace.ledger_intervals import MAX_LINE_LOSS_BPS

    try:
        return int(settlement.functions.parameters().call()[5])
    except (IndexError, ValueError, Web3Exception):  # a build before the bound
        return MAX_LINE_LOSS_BPS


def _audit_intervals(args: argparse.Namespace, report: Any, events: list[Any],
                     domains: Any) -> Any:
    """The report with the interval market audited: every interval the portal published
    (or --intervals holds) and every one a settled position names."""
    from marketplace.audit.batches import MAX_SPAN, positions
    from marketplace.audit.published import IntervalError, parse_intervals
    from marketplace.audit.report import audit_intervals

    settled = {n for e in positions(events)
               if 0 <= e.args["toInterval"] - e.args["fromInterval"] < MAX_SPAN
               for n in range(e.args["fromInterval"], e.args["toInterval"] + 1)}
    entries = _read_intervals(args, settled)
    try:
        intervals = parse_intervals(entries)
    except IntervalError as err:
        raise VerifyError(f"the published intervals are malformed: {err}") from err
    return audit_intervals(report, intervals, events, domains)


def _read_intervals(args: argparse.Namespace, settled: set[int]) -> list[Any]:
    """The published intervals: from --intervals, or the portal's GET /api/intervals/<n> for
    each interval its history lists and each one a settled position names."""
    if args.intervals:
        try:
            data = json.loads(Path(args.intervals).read_text())
        except (OSError, ValueError) as err:
            raise VerifyError(f"cannot read the intervals {args.intervals}: {err}") from err
        return data if isinstance(data, list) else [data]
    if not args.portal:
        return []  # a --book audit without --intervals: settled positions stay unpublished
    history = _get(args.portal, f"/api/intervals?limit={HISTORY}").get("intervals") or []
    wanted = sorted(settled | {int(row["n"]) for row in history if isinstance(row, dict)})
    entries = [entry for n in wanted
               if (entry := _get(args.portal, f"/api/intervals/{n}", missing_ok=True))]
    if args.save_intervals:
        Path(args.save_intervals).write_text(json.dumps(entries, indent=1))
    return entries


def _chain_findings(reader: Any, facts: dict[str, Any]) -> list[Any]:
    """What the node says against the portal: gridbid's code at every address, the escrow
    (and the interval settlement) settling in that token, the chain id."""
    from marketplace.audit.code import built_by_gridbid
    from marketplace.audit.findings import Finding

    found = [Finding("chain", name, f"the code at {contract.address} is not gridbid's build")
             for name, contract in reader.contracts().items()
             if not built_by_gridbid(reader.code(name), name)]
    settles_in, chain_id = reader.escrow_token(), reader.chain_id()
    if settles_in != reader.token.address:
        found.append(Finding("chain", "EnergyEscrow", f"settles in {settles_in}, not the token "
                                                      f"{reader.token.address}"))
    if reader.settlement is not None:
        token, escrow, *_ = reader.settlement.functions.parameters().call()
        if (token, escrow) != (reader.token.address, reader.escrow.address):
            found.append(Finding("chain", "IntervalSettlement", f"settles in {token} and "
                                 f"{escrow}, not the token and the escrow"))
    if facts and int(facts.get("chain_id", chain_id)) != chain_id:
        found.append(Finding("chain", "portal", f"names chain {facts['chain_id']}, the node "
                                                f"runs {chain_id}"))
    return found


def _read_book(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The book's pages: from --book, or every page of the portal's GET /api/book."""
    if args.book:
        try:
            data = json.loads(Path(args.book).read_text())
        except (OSError, ValueError) as err:
            raise VerifyError(f"cannot read the book {args.book}: {err}") from err
        return data if isinstance(data, list) else [data]
    if not args.portal:
        raise VerifyError("give --portal or --book")
    pages, after = [], 0
    while True:
        page = _get(args.portal, f"/api/book?after={after}&limit={PAGE}")
        pages.append(page)
        if page.get("next") is None:
            break
        after = page["next"]
    if args.save_book:
        Path(args.save_book).write_text(json.dumps(pages, indent=1))
    return pages


def _get(portal: str, path: str, missing_ok: bool = False) -> dict[str, Any]:
    import requests

    url = portal.rstrip("/") + path
    try:
        answer = requests.get(url, timeout=30)
        if missing_ok and answer.status_code == 404:
            return {}
        answer.raise_for_status()
        return answer.json()
    except (requests.RequestException, ValueError) as err:
        raise VerifyError(f"GET {url} failed: {err}") from err
