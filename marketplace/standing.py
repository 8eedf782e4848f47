"""Standing orders: their fields checked, and each interval's offer or bid derived from them.

Orders are dicts with the SPEC's EIP-712 field names (SellOrder / BuyOrder), as signed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marketplace.errors import InvalidInput
from marketplace.rules import MAX_WEI, parse_address, parse_int

UINT64 = 2**64 - 1

# field -> (what a person calls it, lowest, highest); addresses are checked apart.
SELL_FIELDS: dict[str, tuple[str, int, int]] = {
    "floorWeiPerKWh": ("the floor price (wei/kWh)", 1, MAX_WEI - 1),
    "maxWhPerInterval": ("the cap per interval (Wh, 0 = none)", 0, UINT64),
    "reserveWh": ("the battery reserve (Wh)", 0, UINT64),
    "expiry": ("the expiry (unix seconds)", 0, UINT64),
    "nonce": ("the nonce", 0, UINT64),
}
BUY_FIELDS: dict[str, tuple[str, int, int]] = {
    "capWeiPerKWh": ("the price cap (wei/kWh)", 1, MAX_WEI - 1),
    "maxWhPerInterval": ("the cap per interval (Wh, 0 = none)", 0, UINT64),
    "expectedWh": ("the expected draw per interval (Wh)", 1, UINT64),
    "dailyBudgetWei": ("the daily budget (wei, 0 = none)", 0, MAX_WEI - 1),
    "expiry": ("the expiry (unix seconds)", 0, UINT64),
    "nonce": ("the nonce", 0, UINT64),
}
OWNERS = {"sell": "seller", "buy": "buyer"}


def check_order(kind: str, order: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A sell or buy order with every field checked: ints, checksummed addresses, or InvalidInput.

    now: unix seconds (block time as the portal sees it); the expiry must lie after it.
    """
    if kind not in OWNERS:
        raise InvalidInput(f"an order is 'sell' or 'buy', got {kind!r}")
    if not isinstance(order, Mapping):
        raise InvalidInput("the order must be an object of named fields")
    fields = SELL_FIELDS if kind == "sell" else BUY_FIELDS
    names = [OWNERS[kind], "meter", *fields]
    unknown = sorted(set(order) - set(names))
    if unknown:
        # Anything not in the signed type would be stored without being signed.
        raise InvalidInput(f"a {kind} order has no field {', '.join(unknown)}; "
                           f"its fields are {', '.join(names)}")
    missing = [name for name in names if name not in order]
    if missing:
        raise InvalidInput(f"the {kind} order is missing {', '.join(missing)}")
    checked: dict[str, Any] = {
        OWNERS[kind]: parse_address(order[OWNERS[kind]], OWNERS[kind]),
        "meter": parse_address(order["meter"], "meter"),
    }
    for name, (label, low, high) in fields.items():
        checked[name] = parse_int(order[name], f"{label}, {name},", low, high)
    if checked["expiry"] <= now:
        raise InvalidInput(f"the order's expiry {checked['expiry']} is not in the future "
                           f"(it is now {int(now)}): choose a later expiry")
    return checked


def check_sell_order(order: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A SellOrder with every field checked (see check_order)."""
    return check_order("sell", order, now)


def check_buy_order(order: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A BuyOrder with every field checked (see check_order)."""
    return check_order("buy", order, now)


def interval_offer(
    order: Mapping[str, Any], uncommitted_wh: int, battery_wh: float, reserve: int | None = None
) -> int:
    """Wh a producer offers this interval: the lesser of its uncommitted tokens and its
    battery above reserve, within its cap per interval.

    reserve: the reserve in Wh the portal applies (one given as a state of charge, converted);
    by default the order's reserveWh.
    """
    kept = int(order["reserveWh"]) if reserve is None else reserve
    above_reserve = math.floor(battery_wh) - kept  # whole Wh: tokens and fills are integers
    wh = min(int(uncommitted_wh), above_reserve, _cap(order))
    return max(0, wh)


def expected_draw(order: Mapping[str, Any], last_metered_wh: int | None,
                  served_whole_interval: bool) -> int:
    """The draw a consumer is expected to take: last interval's metered draw where its relay
    was closed that whole interval, else the order's expectedWh.

    A meter that was not served counts 0 however much its load wanted: bidding that would
    starve the consumer for good.
    """
    if served_whole_interval and last_metered_wh is not None:
        return max(0, int(last_metered_wh))
    return int(order["expectedWh"])


def interval_bid(
    order: Mapping[str, Any],
    last_metered_wh: int | None,
    served_whole_interval: bool,
    spent_today: int,
    free_wei: int,
) -> int:
    """Wh a consumer bids this interval: its expected draw within its cap per interval, the
    daily budget it has left and its free balance, both at its price cap.

    spent_today: wei it paid (or owes, not yet settled) today; free_wei: its free COMMUNITY
    balance not already owed for earlier intervals.
    """
    cap_price = int(order["capWeiPerKWh"])
    if cap_price <= 0:
        raise InvalidInput("the order's price cap must be more than 0 wei/kWh")
    wh = min(expected_draw(order, last_metered_wh, served_whole_interval), _cap(order),
             affordable_wh(free_wei, cap_price))
    budget = int(order["dailyBudgetWei"])
    if budget:
        wh = min(wh, affordable_wh(budget - spent_today, cap_price))
    return max(0, wh)


def affordable_wh(wei: int, price: int) -> int:
    """The most Wh whose cost at price (rounded down, as rules.cost_wei) stays within wei."""
    if wei < 0:
        return 0
    # price × wh // 1000 <= wei  <=>  price × wh < (wei + 1) × 1000
    return ((wei + 1) * 1000 - 1) // price


def _cap(order: Mapping[str, Any]) -> int | float:
    """The order's Wh per interval; 0 means none (unlimited), as the contract reads it."""
    cap = int(order["maxWhPerInterval"])
    return cap if cap > 0 else math.inf
