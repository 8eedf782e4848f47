"""One audit over decoded events, decoded calls and the parsed book: every check, one report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from marketplace.audit import auctions, batches, energy
from marketplace.audit import events as facts
from marketplace.audit.book import BookListing
from marketplace.audit.events import Event
from marketplace.audit.findings import Call, Finding
from marketplace.audit.intervals import Domains, check_intervals
from marketplace.audit.published import PublishedInterval


@dataclass(frozen=True)
class Tolerance:
    """How far the bus check lets the sellers' meters fall short of what buyers were paid."""

    meter_accuracy: float = 0.02  # Settings.meter_accuracy
    floor_wh: int = 2  # Settings.bus_floor_wh


@dataclass(frozen=True)
class Report:
    """What was checked and what disagreed."""

    auctions: int
    mints: int
    deliveries: int
    findings: tuple[Finding, ...]
    intervals: int | None = None  # None: the interval market was not audited
    positions: int = 0

    def summary(self) -> str:
        """The last line `gridbid verify` prints."""
        counts = f"{self.auctions} auctions, {self.mints} mints, {self.deliveries} deliveries"
        if self.intervals is not None:
            counts += f", {self.intervals} intervals, {self.positions} positions"
        if not self.findings:
            return f"{counts} agree"
        return f"{len(self.findings)} disagreements in {counts}"


def audit(
    events: list[Event], calls: Mapping[str, Call], book: list[BookListing], chain_id: int,
    token: str, escrow: str, tolerance: Tolerance = Tolerance(),
) -> Report:
    """Check the book and the chain's events against each other and the contracts' rules."""
    deals = facts.deals(events)
    mints = facts.mints(events)
    balances = facts.Balances(events)
    found = auctions.check_auctions(deals.values(), book, balances, chain_id, escrow)
    found += energy.check_mints(mints, calls, chain_id, token)
    found += energy.check_deliveries(deals.values(), calls, chain_id, token)
    found += energy.check_bus(deals.values(), tolerance.meter_accuracy, tolerance.floor_wh)
    reports = sum(len(d.reports) for d in deals.values())
    return Report(len(deals), len(mints), reports, tuple(found))


def audit_intervals(
    report: Report, intervals: list[PublishedInterval], events: list[Event], domains: Domains
) -> Report:
    """The report with the interval market's checks added: the published intervals re-derived,
    the chain's settled positions and cancelled orders against them."""
    found, owed = check_intervals(intervals, domains)
    found += batches.check_positions(events, owed)
    found += batches.check_cancelled(intervals, events, domains)
    return replace(report, findings=report.findings + tuple(found), intervals=len(intervals),
                   positions=len(batches.positions(events)))


def txs_to_decode(events: list[Event]) -> list[str]:
    """The transactions whose inputs hold readings the audit re-checks."""
    names = ("EnergyMinted", "DeliveryStarted", "DeliveryReported")
    return [e.tx for e in events if e.name in names]
