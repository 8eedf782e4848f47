"""Which market an account trades in (lots by default): switched at a boundary, nothing open."""

from __future__ import annotations

from typing import Any

from marketplace.errors import InvalidInput, NotAllowed
from marketplace.intervals.store import INTERVALS, LOTS, IntervalStore
from marketplace.parties import participant
from marketplace.store import Store

MODES = (LOTS, INTERVALS)


def check_lots(store: Store, address: str) -> None:
    """Refuse a lot-market command of an account in (or switching to) the interval market."""
    row = IntervalStore(store).mode(address)
    if row["mode"] == INTERVALS:
        raise NotAllowed("your account trades in the interval market (standing orders): switch"
                         " it to the lot market before listing or bidding")
    if row["requested"] == INTERVALS:
        raise NotAllowed("your account switches to the interval market at the next interval:"
                         " call the switch off to list or bid on lots")


def mode_view(istore: IntervalStore, address: str) -> dict[str, Any]:
    """An account's market, since which interval, and a switch asked for (or None)."""
    row = istore.mode(address)
    return {"mode": row["mode"], "since_interval": row["since_interval"],
            "requested": row["requested"]}


def request(istore: IntervalStore, address: str, mode: object) -> dict[str, Any]:
    """Ask for a switch at the next boundary with nothing open (the same mode: call it off)."""
    if mode not in MODES:
        raise InvalidInput("a market mode is 'lots' or 'intervals'")
    participant(istore.db, address)
    row = istore.mode(address)
    if mode == LOTS and istore.active_order(address) is not None:
        raise NotAllowed("cancel your standing order first: an account trades in one market at"
                         " a time")
    istore.request_mode(address, None if mode == row["mode"] else str(mode))
    return mode_view(istore, address)


def blocked(istore: IntervalStore, address: str, leaving: str) -> str | None:
    """Why an account cannot leave a market yet (None: it can)."""
    if leaving == LOTS and istore.open_in_lots(address):
        return "a listing, bid or deal of the lot market is still open"
    if leaving == INTERVALS:
        if istore.active_order(address) is not None:
            return "a standing order is active"
        if any(f["settled_batch"] is None for f in istore.fills_of(address, 200)):
            return "fills wait for their settlement"
    return None


def apply_switches(istore: IntervalStore, n: int) -> list[str]:
    """Carry out the switches that can happen at interval n's start; the accounts switched."""
    switched = []
    for row in istore.requested_modes():
        if blocked(istore, row["address"], row["mode"]) is None:
            istore.switch_mode(row["address"], row["requested"], n)
            switched.append(row["address"])
    return switched
