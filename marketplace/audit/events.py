"""Facts rebuilt from the contracts' decoded events alone: balances, deals and mint allowances.

Pure functions over `Event`s (what eth_getLogs returned, decoded, with the block's timestamp),
so an audit never needs historical state a node may have pruned.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marketplace.contract_enums import EscrowMarket, MeterKind

MINT_WINDOW_S = 3600  # EnergyToken.MINT_WINDOW_S: the longest time one mint may cover


@dataclass(frozen=True)
class Event:
    """One decoded contract event, where it happened on the chain."""

    name: str
    args: Mapping[str, Any]
    block: int
    index: int  # the log's index in its block
    at: int  # the block's timestamp (unix seconds)
    tx: str = ""  # the transaction's hash, 0x-hex

    @property
    def position(self) -> tuple[int, int]:
        """Where the event is in the chain's order of events."""
        return (self.block, self.index)


def in_order(events: Iterable[Event]) -> list[Event]:
    """Events in the order the chain emitted them."""
    return sorted(events, key=lambda e: e.position)


def cost_wei(price_wei_per_kwh: int, energy_wh: int) -> int:
    """What energy costs at a price per kWh, rounded down as the escrow does."""
    return price_wei_per_kwh * energy_wh // 1000


class Balances:
    """Each buyer's LOTS free balance and pending request over time, replayed from events.

    "Covering" is what a bid may count on: the free balance minus a pending withdrawal or move
    (which may complete before the deal opens), never below zero.
    """

    def __init__(self, events: Iterable[Event]):
        self._free: dict[tuple[str, int], int] = defaultdict(int)
        self._pending: dict[tuple[str, int], int] = defaultdict(int)
        self._buyer_of_deal: dict[int, str] = {}
        # Per buyer: positions, block times and the covering amount after each change.
        self._positions: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._times: dict[str, list[int]] = defaultdict(list)
        self._covering: dict[str, list[int]] = defaultdict(list)
        for event in in_order(events):
            buyer = self._apply(event)
            if buyer is not None:
                self._record(buyer, event)

    def covering(
        self, buyer: str, *, at: float | None = None, before: tuple[int, int] | None = None
    ) -> int:
        """What covered buyer's bids in LOTS at a time (blocks stamped at or before it) or just
        before a position in the chain's order of events."""
        if at is not None:
            i = bisect.bisect_right(self._times[buyer], at)
        elif before is not None:
            i = bisect.bisect_left(self._positions[buyer], before)
        else:
            i = len(self._covering[buyer])
        return self._covering[buyer][i - 1] if i else 0

    def _record(self, buyer: str, event: Event) -> None:
        key = (buyer, EscrowMarket.LOTS)
        self._positions[buyer].append(event.position)
        self._times[buyer].append(event.at)
        self._covering[buyer].append(max(0, self._free[key] - self._pending[key]))

    def _apply(self, event: Event) -> str | None:
        """Apply one escrow event; the buyer whose LOTS balance it may change (or None)."""
        a, name = event.args, event.name
        if name == "Deposited":
            self._free[a["buyer"], a["market"]] += a["amount"]
        elif name == "WithdrawalRequested":
            self._pending[a["buyer"], a["market"]] = a["amount"]  # replaces; 0 cancels
        elif name == "Withdrawn":
            self._free[a["buyer"], a["market"]] -= a["amount"]
            self._pending[a["buyer"], a["market"]] = 0
        elif name == "Moved":
            self._free[a["buyer"], a["fromMarket"]] -= a["amount"]
            self._free[a["buyer"], a["toMarket"]] += a["amount"]
            self._pending[a["buyer"], a["fromMarket"]] = 0
        elif name == "DealOpened":
            self._buyer_of_deal[a["dealId"]] = a["buyer"]
            self._free[a["buyer"], EscrowMarket.LOTS] -= cost_wei(a["priceWeiPerKWh"],
                                                                  a["energyWh"])
        elif name == "DealClosed" and a["dealId"] in self._buyer_of_deal:
            buyer = self._buyer_of_deal[a["dealId"]]
            self._free[buyer, EscrowMarket.LOTS] += a["refundedWei"]
            return buyer
        else:
            return None
        return a["buyer"]


@dataclass
class Deal:
    """An escrow deal as its events tell it: the opening, the delivery reports, the close."""

    opened: Event
    started: Event | None = None
    reports: list[Event] = field(default_factory=list)
    closed: Event | None = None

    @property
    def id(self) -> int:
        """The escrow's deal id."""
        return self.opened.args["dealId"]

    def __getattr__(self, name: str) -> Any:
        # The DealOpened arguments (buyer, seller, buyerMeter, priceWeiPerKWh, ...).
        try:
            return self.__dict__["opened"].args[name]
        except KeyError as err:
            raise AttributeError(name) from err


def deals(events: Iterable[Event]) -> dict[int, Deal]:
    """Every deal the events opened, with what happened to it after."""
    found: dict[int, Deal] = {}
    for event in in_order(events):
        if event.name == "DealOpened":
            found[event.args["dealId"]] = Deal(event)
            continue
        deal = found.get(event.args.get("dealId", -1)) if event.name in (
            "DeliveryStarted", "DeliveryReported", "DealClosed") else None
        if deal is None:
            continue
        if event.name == "DeliveryStarted":
            deal.started = event
        elif event.name == "DeliveryReported":
            deal.reports.append(event)
        else:
            deal.closed = event
    return found


@dataclass(frozen=True)
class Mint:
    """One EnergyMinted with what the meter's enrollment and earlier mints allowed it."""

    event: Event
    kind: int  # the meter's kind when it minted (MeterKind)
    owner: str | None  # the owner it was enrolled to
    rated_power_w: int
    previous_at: int  # the meter's lastReadingAt before this mint
    previous_wh: int  # its lastReadingWh (minted total) before this mint
    allowed_wh: int  # rated × min(readingAt − previous_at, MINT_WINDOW_S) / 3600


@dataclass
class _Meter:
    kind: int = MeterKind.NONE
    owner: str | None = None
    rated_power_w: int = 0
    last_at: int = 0
    last_wh: int = 0


def mints(events: Iterable[Event], window_s: int = MINT_WINDOW_S) -> list[Mint]:
    """Every EnergyMinted with the allowance the token's rules gave it, replayed per meter."""
    meters: dict[str, _Meter] = defaultdict(_Meter)
    found = []
    for event in in_order(events):
        a = event.args
        if event.name == "MeterEnrolled":
            meter = meters[a["meter"]]
            if meter.last_at == 0:  # the first enrollment starts the meter's clock
                meter.last_at = event.at
            meter.kind, meter.owner, meter.rated_power_w = a["kind"], a["owner"], a["ratedPowerW"]
        elif event.name == "MeterDisenrolled":
            meters[a["meter"]].kind = MeterKind.NONE
        elif event.name == "MeterBaseline":  # the first reading after an enrollment mints 0
            meters[a["meter"]].last_at, meters[a["meter"]].last_wh = a["readingAt"], a["readingWh"]
        elif event.name == "EnergyMinted":
            meter = meters[a["meter"]]
            span = max(0, min(a["readingAt"] - meter.last_at, window_s))
            found.append(Mint(event, meter.kind, meter.owner, meter.rated_power_w, meter.last_at,
                              meter.last_wh, meter.rated_power_w * span // 3600))
            meter.last_at, meter.last_wh = a["readingAt"], a["mintedTotalWh"]
    return found
