"""The contracts' enums as Python sees them (EnergyEscrow.sol, EnergyToken.sol): same numbers."""

from __future__ import annotations

from enum import IntEnum


class MeterKind(IntEnum):
    """EnergyToken.MeterKind: what an enrolled meter measures (None: not enrolled)."""

    NONE = 0
    PRODUCER = 1
    CONSUMER = 2


class EscrowMarket(IntEnum):
    """EnergyEscrow's market ids (LOTS, COMMUNITY) and OUT, a request's "out of the escrow"."""

    LOTS = 0
    COMMUNITY = 1
    OUT = 255


# The markets a buyer can hold a balance in (OUT is only a request's destination).
MARKETS = (EscrowMarket.LOTS, EscrowMarket.COMMUNITY)


class DealStatus(IntEnum):
    """EnergyEscrow.DealStatus (None: no such deal)."""

    NONE = 0
    OPEN = 1
    CLOSED = 2


class CloseReason(IntEnum):
    """EnergyEscrow.CloseReason: why the escrow closed a deal (None: still open)."""

    NONE = 0
    COMPLETED = 1
    CLOSED_BY_BUYER = 2
    CLOSED_BY_SELLER = 3
    EXPIRED = 4
    METER_OFFLINE = 5
    SUPPLY_EXHAUSTED = 6


# How the pages and the simulation report name each reason a closed deal can have.
CLOSE_REASONS = {
    CloseReason.COMPLETED: "completed",
    CloseReason.CLOSED_BY_BUYER: "closed by buyer",
    CloseReason.CLOSED_BY_SELLER: "closed by seller",
    CloseReason.EXPIRED: "expired",
    CloseReason.METER_OFFLINE: "meter offline",
    CloseReason.SUPPLY_EXHAUSTED: "seller's supply exhausted",
}
