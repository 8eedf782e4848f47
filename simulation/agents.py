"""Automatic traders for a simulated day: producers list at a reserve, consumers bid to a limit.

Each agent acts through the Market's own signed commands (a listing with its approval, an
EIP-712 bid) with its participant's key, so every rule a person meets applies to it as well.
The decisions are pure functions of what the agent sees, kept apart from the acting.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from gridbid_client.local import LocalParty
from marketplace.errors import MarketError
from marketplace.market import Market
from marketplace.rules import cost_wei
from marketplace.states import ListingState

log = logging.getLogger(__name__)


def engaged(market: Market, address: str) -> bool:
    """Whether an account has a deal under way, as seller or buyer.

    One at a time each: a board's relay and meter serve every deal of its owner at once, so
    two deals of one buyer would both count the same Wh, and the end of one deal of a seller
    would switch off the battery another deal of it draws on.
    """
    return market.store.engaged(address)


def demand_w(profile: list[tuple[float, float]], hour: float, default: float = 0.0) -> float:
    """Watts a load profile of (from-hour, watts) steps asks for at an hour of the day."""
    watts = default
    for start, value in sorted(profile):
        if hour % 24.0 >= start:
            watts = value
    return watts


def lot_to_list(unlisted_wh: int, busy: bool, lot_wh: int, min_lot_wh: int) -> int:
    """Wh a producer lists now: up to one lot of its unlisted tokens, none while busy.

    Busy means it has a listing open or a deal under way (a new listing's token approval
    would also replace the allowance a deal still being opened is about to draw on).
    """
    if busy or unlisted_wh < min_lot_wh:
        return 0
    return min(unlisted_wh, lot_wh)


def choose_bid(
    me: str, listings: list[dict[str, Any]], limit_wei: int, free_wei: int
) -> tuple[int, int] | None:
    """(listing id, price) of the cheapest open listing a consumer can still win, or None.

    It bids the lowest acceptable price, never above its limit nor beyond its free escrow;
    on a listing it already leads it does nothing (it would only outbid itself).
    """
    best: tuple[int, float, int] | None = None  # (price, deadline, listing id)
    for listing in listings:
        if listing["status"] != ListingState.OPEN or listing["seller"] == me:
            continue
        if listing["highest_bidder"] == me:
            return None  # leading one auction is enough: one deal at a time
        price = int(listing["min_next_bid_wei"])
        if price > limit_wei or cost_wei(price, listing["energy_wh"]) > free_wei:
            continue
        candidate = (price, listing["deadline"], listing["id"])
        if best is None or candidate < best:
            best = candidate
    return (best[2], best[0]) if best else None


@dataclass
class ProducerAgent:
    """Lists its minted tokens in lots at its reserve price (the auction's start bid)."""

    name: str
    account: LocalParty
    reserve_wei: int  # wei per kWh
    lot_wh: int = 120
    min_lot_wh: int = 30
    duration_s: int = 900

    def act(self, market: Market) -> dict[str, Any] | None:
        """List one lot if due; the listing, or None."""
        me = self.account.address
        busy = any(row["seller"] == me for row in market.store.listings(ListingState.OPEN))
        busy = busy or engaged(market, me)
        wh = lot_to_list(market.unlisted_wh(me), busy, self.lot_wh, self.min_lot_wh)
        if not wh:
            return None
        try:
            return self.account.list(wh, self.reserve_wei, self.duration_s)
        except MarketError as err:  # e.g. tokens moved meanwhile: try again next round
            log.info("%s did not list %s Wh: %s", self.name, wh, err)
            return None


@dataclass
class ConsumerAgent:
    """Bids on the cheapest listing it can afford, up to its price limit, when its load runs."""

    name: str
    account: LocalParty
    limit_wei: int  # wei per kWh
    profile: list[tuple[float, float]]  # (from-hour, watts) of its load, as the emulator has it
    load_w: float = 0.0  # before the first profile step

    def wants(self, hour: float) -> bool:
        """Whether its load draws power at this hour of the day."""
        return demand_w(self.profile, hour, self.load_w) > 0

    def act(self, market: Market, hour: float) -> dict[str, Any] | None:
        """Place one bid if it needs energy and is not already being served; the listing."""
        me = self.account.address
        if not self.wants(hour):
            return None
        # Listings first, deals second: an auction it led that closed in between shows up
        # as a won listing, never as neither.
        listings = market.listings(ListingState.OPEN)
        if engaged(market, me):
            return None
        choice = choose_bid(me, listings, self.limit_wei, market.ledger.escrow_free(me))
        if choice is None:
            return None
        try:
            return self.account.bid(*choice)
        except MarketError as err:  # outbid or closed since we looked: next round
            log.debug("%s bid refused: %s", self.name, err)
            return None


def sell_fields(reserve_wei: int, reserve_wh: int, valid_s: int) -> dict[str, Any]:
    """A producer's standing sell order: its floor and the battery energy it keeps."""
    return {"floor_wei_per_kwh": reserve_wei, "reserve_wh": reserve_wh,
            "max_wh_per_interval": 0, "valid_s": valid_s}


def buy_fields(limit_wei: int, peak_w: float, interval_s: int, valid_s: int) -> dict[str, Any]:
    """A consumer's standing buy order: its cap, its expected draw and a budget per day.

    The expected draw is its load's peak over an interval: the market bids it only for an
    interval after one its relay did not serve whole (else the metered draw), so a lower
    figure would hold a load that grows at that figure for good.
    """
    expected = max(1, math.ceil(peak_w * interval_s / 3600))
    budget = limit_wei * math.ceil(peak_w * 24) // 1000  # its peak all day at its cap
    return {"cap_wei_per_kwh": limit_wei, "expected_wh": expected, "max_wh_per_interval": 0,
            "daily_budget_wei": budget, "valid_s": valid_s}


@dataclass
class StandingAgent:
    """A participant of the interval market: it sets its standing order once, then waits."""

    name: str
    account: LocalParty
    kind: str  # "sell" or "buy"
    fields: dict[str, Any]
    placed: dict[str, Any] | None = None

    def act(self, market: Market, hour: float | None = None) -> dict[str, Any] | None:
        """Switch to the interval market, then set the order once the switch took effect
        (retried if refused)."""
        if self.placed is not None:
            return None
        try:
            if market.intervals.mode_of(self.account.address) != "intervals":
                # Ordered only from the boundary that switched it: that boundary's readings
                # are the first its fills are metered and settled from.
                if market.intervals.mode_view(self.account.address).get("requested") is None:
                    self.account.set_mode("intervals")
                return None
            self.placed = self.account.set_order(self.kind, self.fields)
        except MarketError as err:  # e.g. its meter not enrolled yet: next round
            log.info("%s did not set its %s order: %s", self.name, self.kind, err)
        return self.placed
