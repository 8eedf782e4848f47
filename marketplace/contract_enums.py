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
    METERS_DISAGREE = 7


# How the pages and the simulation report name each reason a closed deal can have.
CLOSE_REASONS = {
    CloseReason.COMPLETED: "completed",
    CloseReason.CLOSED_BY_BUYER: "closed by buyer",
    CloseReason.CLOSED_BY_SELLER: "closed by seller",
    CloseReason.EXPIRED: "expired",
    CloseReason.METER_OFFLINE: "meter offline",
    CloseReason.SUPPLY_EXHAUSTED: "seller's supply exhausted",
    CloseReason.METERS_DISAGREE: "meters disagree",
}


class ReadingRefusal(IntEnum):
    """EnergyToken's ReadingRefused reasons: why mintReadings skipped a signed reading."""

    NOT_PRODUCER = 1
    BAD_SIGNATURE = 2
    FROM_THE_FUTURE = 3  # timestamp after the block's
    STALE = 4  # timestamp not after the meter's last minted reading
    WENT_BACKWARDS = 5  # whIn below the meter's minted counter
    OUT_OF_RANGE = 6  # whIn above 2^192 Wh


# How the pages and the logs name each refusal.
READING_REFUSALS = {
    ReadingRefusal.NOT_PRODUCER: "not an enrolled producer meter",
    ReadingRefusal.BAD_SIGNATURE: "not signed by its meter",
    ReadingRefusal.FROM_THE_FUTURE: "timestamp in the future",
    ReadingRefusal.STALE: "not newer than the last minted reading",
    ReadingRefusal.WENT_BACKWARDS: "counter below what was minted",
    ReadingRefusal.OUT_OF_RANGE: "counter out of range",
}
