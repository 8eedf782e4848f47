"""Auction rules as pure functions: they take values and a time, and raise or return."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address

from contracts.eip712 import checksummed
from marketplace.errors import (
    AuctionClosed,
    BidTooLow,
    InsufficientEscrow,
    InsufficientTokens,
    InvalidInput,
    NotAllowed,
    NotFound,
)
from marketplace.states import ListingState
from marketplace.units import eth
from marketplace.units import price as price_text

MAX_WEI = 2**128  # far above any sane price; keeps arithmetic inside uint256 on chain
ETH_DECIMALS = 18
# ASCII digits only: [0-9], not \d, which (like int()) takes every script's digits.
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Plain decimal text with an optional exponent, ASCII only: no NaN, Infinity, "_" or other
# scripts' digits, which Decimal() would take.
_DECIMAL = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?(?:[eE](?P<exponent>[+-]?[0-9]+))?"
)


@dataclass(frozen=True)
class Limits:
    """Bounds a listing and a bid must respect (configurable per portal)."""

    min_energy_wh: int = 1
    max_energy_wh: int = 1_000_000
    min_duration_s: int = 10
    max_duration_s: int = 24 * 3600  # part of the escrow's withdrawal notice (settings.py)
    min_increment_wei: int = 1  # a new highest bid beats the last by at least this …
    min_increment_pct: float = 0.0  # … and by at least this share of it, whichever is more
    soft_close_s: int = 0  # a bid this close to the deadline pushes it back by as much …
    soft_close_cap_s: int = 0  # … but never more than this past the listing's first deadline


def min_next_bid(start_price: int, highest: int | None, limits: Limits) -> int:
    """The lowest bid that would be accepted now."""
    if highest is None:
        return start_price
    by_pct = -(-highest * round(limits.min_increment_pct * 1000) // 100_000)  # ceil
    return highest + max(limits.min_increment_wei, by_pct)


def extended_deadline(deadline: float, closes_by: float, now: float, limits: Limits) -> float:
    """Soft close: a bid in the last soft_close_s seconds moves the deadline back, capped."""
    if limits.soft_close_s <= 0 or deadline - now > limits.soft_close_s:
        return deadline
    return min(deadline + limits.soft_close_s, closes_by)


def cost_wei(price_wei_per_kwh: int, energy_wh: int) -> int:
    """What energy_wh costs at a price per kWh, rounded down as the escrow does."""
    return price_wei_per_kwh * energy_wh // 1000


def check_cost(price_wei_per_kwh: int, energy_wh: int, what: str) -> None:
    """Refuse a price that buys energy_wh for 0 wei (the escrow would lock nothing)."""
    if cost_wei(price_wei_per_kwh, energy_wh) == 0:
        least = -(-1000 // energy_wh)  # ceil: the least price whose lot costs 1 wei
        raise InvalidInput(
            f"{energy_wh} Wh at {price_text(price_wei_per_kwh)} costs nothing (the escrow rounds "
            f"the cost down, to 0 here): the {what} must be at least {price_text(least)}"
        )


def stored(
    fetch: Callable[[int], dict[str, Any] | None], value: object, what: str
) -> dict[str, Any]:
    """The stored row (read by fetch) of an id a person gave, or InvalidInput/NotFound."""
    row_id = parse_int(value, what, 1, 2**63 - 1)
    row = fetch(row_id)
    if not row:
        raise NotFound(f"no {what} {row_id}")
    return row


def parse_int(value: object, field: str, low: int, high: int) -> int:
    """An integer field from user input, or InvalidInput naming the field and its range.

    Only ASCII digits count: int() and str.isdigit() also take other scripts' digits ("١٢٣",
    fullwidth "１２３") and underscores, which a person reading the value would not see as it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = value.strip() if isinstance(value, str) else None
        if text is None or not _INTEGER.fullmatch(text):
            raise InvalidInput(f"{field} must be a whole number (digits 0-9), got {_shown(value)}")
        if len(text.lstrip("+-").lstrip("0")) > len(str(max(abs(low), abs(high)))):
            raise InvalidInput(f"{field} must be between {low} and {high}")
        number = int(text)
    if not low <= number <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}, got {number}")
    return number


def _shown(value: object) -> str:
    """A value as an error message quotes it: short, so junk is not echoed back whole."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_listing(energy_wh: int, unlisted_wh: int) -> None:
    """Refuse a listing the seller's unlisted tokens do not cover."""
    if energy_wh > unlisted_wh:
        raise InsufficientTokens(
            f"you can list at most {unlisted_wh} Wh: that is your token balance "
            "not already offered in a listing or held for a deal about to open"
        )


def check_bid(
    *,
    seller: str,
    bidder: str,
    start_price: int,
    highest: int | None,
    price: int,
    energy_wh: int,
    deadline: float,
    now: float,
    status: str,
    free_wei: int,
    limits: Limits,
    withdrawing_wei: int = 0,
) -> None:
    """Refuse a bid that breaks a rule; the message says which and what would pass.

    withdrawing_wei: the bidder's pending withdrawal request; it may complete before this
    auction's deal opens, so that part of free_wei does not cover a bid.
    """
    if status != ListingState.OPEN or now >= deadline:
        raise AuctionClosed("this auction has ended and takes no more bids")
    if bidder == seller:
        raise NotAllowed("you cannot bid on your own listing")
    if price < start_price:
        raise BidTooLow(f"the start bid is {price_text(start_price)} "
                        f"({eth(cost_wei(start_price, energy_wh), 'up')} for these {energy_wh} Wh)"
                        "; bid at least that")
    lowest = min_next_bid(start_price, highest, limits)
    if highest is not None and price < lowest:
        raise BidTooLow(
            f"the highest bid is {price_text(highest)}; bid at least {price_text(lowest)} "
            f"({eth(cost_wei(lowest, energy_wh), 'up')} for these {energy_wh} Wh; a new bid "
            f"beats the highest by at least {price_text(limits.min_increment_wei)}"
            + (f" or {limits.min_increment_pct:g} %, whichever is more"
               if limits.min_increment_pct else "")
            + ")"
        )
    check_cost(price, energy_wh, "bid")
    needed = cost_wei(price, energy_wh)
    covering = max(0, free_wei - withdrawing_wei)
    if needed > covering:
        have = f"you have {eth(free_wei)} free in the escrow; deposit more on the Wallet view"
        if withdrawing_wei:
            have = (f"you have {eth(free_wei)} free in the escrow, of which the "
                    f"{eth(withdrawing_wei, 'up')} you asked to withdraw covers no bid; cancel "
                    "that request or deposit more")
        raise InsufficientEscrow(f"this bid needs {eth(needed, 'up')} ({energy_wh} Wh at "
                                 f"{price_text(price)}); {have}")


def winner(bids: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    """The winning (bid_id, price, bidder): highest price, earliest bid on a tie."""
    if not bids:
        return None
    return min(bids, key=lambda bid: (-bid[1], bid[0]))


def parse_address(value: object, field: str = "address") -> str:
    """A checksummed address from user input, or InvalidInput (the zero address too)."""
    text = value.strip() if isinstance(value, str) else ""
    if not is_hex_address(text):
        raise InvalidInput(f"{field} {_shown(value)} is not an Ethereum address "
                           "(0x and 40 hex digits)")
    digits = text[2:]
    # checksummed() keeps each address's EIP-55 form: every bid names two, each a keccak.
    if digits not in (digits.lower(), digits.upper()) and checksummed(text) != text:
        raise InvalidInput(f"{field} {text} has a wrong checksum: check it for a typo")
    if int(digits, 16) == 0:
        # Nobody holds its key: Ether sent there is burnt, and no meter or account is it.
        raise InvalidInput(f"{field} is the zero address (0x000…0), which belongs to nobody")
    return checksummed(text.lower())


def parse_ether(value: object, field: str) -> int:
    """An amount typed in Ether (decimal text, up to 18 places) as exactly that many wei.

    Computed from the digits, never through a rounding Decimal context: an amount that is
    not a whole number of wei, not above 0 or not below MAX_WEI wei is refused, not rounded.
    """
    text = _number_text(value)
    match = _DECIMAL.fullmatch(text) if text is not None else None
    if match is None or not (match["whole"] or match["fraction"]):
        raise InvalidInput(f"{field} must be a number of ETH such as 1.5, got {_shown(value)}")
    fraction = match["fraction"] or ""
    digits = (match["whole"] + fraction).lstrip("0")
    if match["sign"] == "-" or not digits:
        raise InvalidInput(f"{field} must be more than 0 ETH")
    exponent = (match["exponent"] or "0").lstrip("+")
    if len(exponent.lstrip("-").lstrip("0")) > 4:
        raise InvalidInput(f"{field} has an exponent out of range: write it as plain decimals")
    shift = int(exponent) - len(fraction) + ETH_DECIMALS  # wei = digits × 10**shift
    kept = digits.rstrip("0")
    shift += len(digits) - len(kept)
    if shift < 0:
        raise InvalidInput(f"{field} has too many decimals: at most {ETH_DECIMALS} decimals of ETH")
    if len(kept) + shift > len(str(MAX_WEI)) or int(kept) * 10**shift >= MAX_WEI:
        raise InvalidInput(f"{field} is too large: at most {eth(MAX_WEI - 1)}")
    return int(kept) * 10**shift


def _number_text(value: object) -> str | None:
    """The text of a number given as a string or a JSON number (None for anything else)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return repr(value)  # a float's shortest text: what the sender wrote, not its binary value


BID_EXPIRY_WINDOW_S = 7 * 86400  # a signed bid may stay valid this long past its least expiry


def bid_expiry_bounds(closes_by: float | None, deadline: float,
                      bid_validity_s: int) -> tuple[int, int]:
    """(least, greatest) expiry a bid on a listing may carry: its deal may open up to
    bid_validity_s after the latest the auction can close, and no bid lives for weeks."""
    least = int(closes_by or deadline) + bid_validity_s
    return least, least + BID_EXPIRY_WINDOW_S
