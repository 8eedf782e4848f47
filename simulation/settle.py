"""The end of a trading day: auctions finish, buyers close their deals, the last Wh is minted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from marketplace.errors import MarketError
from marketplace.states import LIVE_DEALS
from simulation.stepper import Stepper
from web.runtime import Runtime


def settle(runtime: Runtime, people: list[dict[str, Any]], say: Callable[[str], None],
           stepper: Stepper) -> None:
    """Close every auction and deal, stop emulated time, and mint each meter's last Wh.

    The stepper keeps the day's time moving while it waits (auction deadlines are on it).
    """
    market, store = runtime.market, runtime.store
    tick = stepper.step
    keys = {p["address"]: p["key"] for p in people}
    say("end of the day: settling open auctions and deals ...")
    for listing in market.listings("open"):
        if not listing["bid_count"]:
            try:
                keys[listing["seller"]].cancel(listing["id"])
            except MarketError:
                pass  # it closed by itself meanwhile
    wait_for(lambda: not store.listings("open"), "auctions to close", tick=tick)
    wait_for(lambda: not any(d["status"] == "opening" for d in store.deals()), "deals to open",
             tick=tick)
    for deal in store.deals():
        if deal["status"] == "active":
            try:
                keys[deal["buyer"]].close(deal["id"])
            except MarketError:
                pass  # it completed meanwhile
    wait_for(lambda: not any(d["status"] in LIVE_DEALS for d in store.deals()),
             "deals to close", timeout=120, tick=tick)
    _mint_the_last_wh(runtime, say, stepper)
    wait_for(lambda: not runtime.txm.pending(), "pending transactions", tick=tick)


def _mint_the_last_wh(runtime: Runtime, say: Callable[[str], None], stepper: Stepper) -> None:
    """Sunset for the books: the meters stop moving while their last Wh are minted."""
    stepper.pause()
    runtime.market.minting.flush()  # one Wh at a time if need be
    meters = {p["board_id"]: p["meter_address"] for p in runtime.store.participants()
              if p["role"] == "producer"}
    target = {b: int(runtime.bridge.read(b).wh_in) for b in meters}
    say("minting each producer meter's last Wh ...")
    wait_for(lambda: all(runtime.ledger.meter_of(m)["last_reading_wh"] >= target[b]
                         for b, m in meters.items()), "the last mints", timeout=60,
             tick=stepper.step)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0,
             tick: Callable[[], None] | None = None) -> None:
    """Poll a condition until it holds, or raise TimeoutError naming what was awaited.

    Between polls tick() moves the day's time (else 0.1 s of wall time passes).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulation: gave up waiting for {what} after {timeout:.0f} s")
        if tick is None:
            time.sleep(0.1)
        else:
            tick()
