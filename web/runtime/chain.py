"""The portal's chain: start it (or share the node already running), deploy or attach contracts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from geth_private import backend_from_uri
from geth_private.backend import PERSISTENT, ChainBackend
from geth_private.cli import running_node
from geth_private.errors import ChainUnavailable
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)


def start_chain(uri: str, data_dir: Path, fallback: bool = True) -> ChainBackend:
    """Start the configured chain; without an anvil binary, fall back to embedded (if allowed).

    A node `gridbid chain start` (or `join`) already runs on this data directory is shared:
    anvil through its URL; geth through its datadir too, whose operator key funds the portal.
    """
    scheme = uri.split(":")[0]
    running = running_node(data_dir, scheme) if scheme in ("anvil", "geth") else None
    if running and uri.startswith("geth:"):
        backend = backend_from_uri(uri, str(data_dir))
        backend.attach(running)  # type: ignore[attr-defined]
        return _with_operator_key(backend)
    if running:
        uri = running
    backend = backend_from_uri(uri, str(data_dir))
    try:
        backend.start()
    except ChainUnavailable as err:
        if not uri.startswith("anvil:") or not fallback:
            raise
        log.warning("%s; falling back to the embedded chain (memory only)", err)
        backend = backend_from_uri("embedded://")
        backend.start()
    return _with_operator_key(backend) if uri.startswith("geth:") else backend


def _with_operator_key(backend: ChainBackend) -> ChainBackend:
    """Refuse a portal on a machine that joined another's network, before it deploys anything.

    Such a machine has no funded operator key: a portal there would deploy contracts and keep
    a store of its own, a second market. It runs `gridbid bridge` for its boards instead.
    """
    try:
        backend.faucet()
    except ChainUnavailable:
        backend.stop()
        raise
    return backend


def deploy_or_attach(
    ledger: Ledger, backend: ChainBackend, book: Path, notice_s: int, deal_duration_s: int,
    max_rated_power_w: int, **intervals: int,
) -> None:
    """Reuse the address book's contracts when this chain has them, of this build, with this
    withdrawal notice and deal duration, and this operator runs them; else deploy new ones.

    The escrow's withdrawal notice and deal duration are fixed at deploy: contracts deployed
    with others (or before escrows had them) are stale; so is a book without an
    IntervalSettlement, or one whose parameters differ from `intervals` (interval_s,
    interval_wall_s, anyone_after_s, max_line_loss_bps, as Ledger.deploy takes them).
    """
    chain_id = ledger.chain_id()
    if backend.has(PERSISTENT) and book.exists():
        saved = json.loads(book.read_text())
        if saved.get("chain_id") == chain_id and ledger.deployed_at(saved):
            ledger.attach(saved)
            if not ledger.deployed_at(saved, notice_s, deal_duration_s):
                log.warning("the escrow deployed before is of another build, or has no "
                            "withdrawal notice of %s s and deal duration of %s s: deploying "
                            "new contracts", notice_s, deal_duration_s)
            elif not _same_intervals(ledger, intervals):
                log.warning("the interval settlement deployed before has other parameters "
                            "than %s: deploying new contracts", intervals)
            elif all(ledger.roles_of(ledger.operator.address).values()):
                log.info("using the contracts deployed before: %s", saved)
                return
            else:
                # e.g. contracts an older portal deployed from anvil's published dev key:
                # whoever holds that key runs them, so they are left behind.
                log.warning("the contracts in %s were deployed by another operator (%s lacks "
                            "their roles): deploying new ones", book, ledger.operator.address)
    addresses = ledger.deploy(notice_s, deal_duration_s, max_rated_power_w, **intervals)
    if backend.has(PERSISTENT):
        book.parent.mkdir(parents=True, exist_ok=True)
        book.write_text(json.dumps({"chain_id": chain_id, **addresses}, indent=1))



def _same_intervals(ledger: Ledger, intervals: dict[str, int]) -> bool:
    """Whether the attached IntervalSettlement has the parameters asked for (those given)."""
    wanted = dict(intervals)
    if "interval_s" in wanted:
        wanted.setdefault("interval_wall_s", wanted["interval_s"])
    found = ledger.intervals.parameters()
    return all(found[name] == value for name, value in wanted.items())
