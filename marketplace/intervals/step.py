"""One interval boundary: orders cancelled on chain ended, boundary readings, the books of the
interval before the ended one (marketplace.intervals.accounting), the next clearing, relays and
budgets. Claimed in the store, so exactly one worker does each boundary."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any

from marketplace import clearing, standing
from marketplace.contract_enums import EscrowMarket
from marketplace.events import Hub
from marketplace.interval_minting import unminted_wh
from marketplace.intervals import cancels, modes
from marketplace.intervals.accounting import Accounting, owed_wei
from marketplace.intervals.boundaries import DAY_S, Boundaries
from marketplace.intervals.chainside import reopen_forgotten
from marketplace.intervals.orders import BUY, SELL, StandingOrders
from marketplace.intervals.store import EXPIRED, INTERVALS, IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.switchboard import Switchboard

log = logging.getLogger(__name__)

COMMUNITY = EscrowMarket.COMMUNITY


class BoundaryStep:
    """Does the work of one boundary once it is claimed (see IntervalMarket.step)."""

    def __init__(self, istore: IntervalStore, orders: StandingOrders, ledger: Ledger,
                 switchboard: Switchboard, hub: Hub, settings: Settings,
                 boundaries: Boundaries):
        self.istore = istore
        self.orders = orders
        self.ledger = ledger
        self.switchboard = switchboard
        self.hub = hub
        self.settings = settings
        self.boundaries = boundaries
        self.accounting = Accounting(istore, settings.max_line_loss_bps())

    def run(self, n: int, prev: int | None) -> dict[str, Any]:
        """Close interval prev (None: none before) and open n; the published summary.

        The chain is read first (orders cancelled on chain end here), so the boundary readings
        are as fresh as the boards' signed cache when the relays switch; prev is measured and
        the interval before it accounted (its spill into prev's window is known now).
        """
        modes.apply_switches(self.istore, n)
        cancels.follow(self.istore, self.ledger)
        reopen_forgotten(self.istore, self.ledger)  # a forgotten burn is not counted as done
        chain = self._chain_inputs()
        with self.istore.db.transaction():
            self._capture(n, prev)
        self.accounting.run(prev)
        offers, bids, used = self._book(n, chain)
        result = clearing.clear(offers, bids, self.settings.pricing)
        book = {"offers": [asdict(o) for o in offers], "bids": [asdict(b) for b in bids],
                "fills": [asdict(f) for f in result.fills],
                "orders": [{"kind": r["kind"], "order": r["order"], "signature": r["signature"]}
                           for r in used]}
        with self.istore.db.transaction():
            self._store_fills(n, result, {r["owner"]: r for r in used})
            self.istore.clear_interval(n, result.price, book)
        self._switch(result)
        summary = {"n": n, "price_wei": None if result.price is None else str(result.price),
                   "pricing": result.rule, "volume_wh": result.volume_wh,
                   "start": self.boundaries.start(n), "end": self.boundaries.end(n),
                   "next_at": self.boundaries.end(n),
                   "emulated_start": self.boundaries.emulated(n)}
        self.hub.publish("interval", summary)
        return summary

    # -- readings and accounts -------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        """Participants in the interval market with a board and meter."""
        inside = self.istore.in_mode(INTERVALS)
        return [p for p in self.istore.db.participants()
                if p["address"] in inside and p["board_id"] and p["meter_address"]]

    def _capture(self, n: int, prev: int | None) -> None:
        """Each member meter's latest signed reading ends prev and starts n: never one older
        than the reading that started the latest boundary that stored one (prev, or before
        it when prev's worker had no reading of the board). Workers take turns at
        boundaries, and one whose cache of a board lags (its bus away: a Redis restart)
        would store an older reading than the last boundary's: a window went back to 0 and
        the next counted its Wh again, billed beyond what the contract lets positions claim
        (OVER_METERED); and a sell's position closed below the reading its offer counted
        (_uncommitted), its burn cut."""
        opening = {} if prev is None else self.istore.readings(prev)["start"]
        for member in self.members():
            reading = self.switchboard.signed(member["board_id"])
            if reading is None or reading.meter != member["meter_address"]:
                continue
            data = reading.to_json()
            opened = opening.get(reading.meter)
            if opened is None and prev is not None:  # prev stored none: the one before it
                opened = self.istore.latest_start(reading.meter, prev)
            if opened is not None and int(opened["timestamp"]) > reading.timestamp:
                data = opened  # the newer one, signed by the same meter: the cache lagged
            if prev is not None:
                self.istore.add_reading(prev, reading.meter, "end", data)
            self.istore.add_reading(n, reading.meter, "start", data)

    # -- the next interval's book ----------------------------------------------------------

    def _chain_inputs(self) -> dict[str, dict[str, Any]]:
        """What the chain says of each member with an active order: a seller's tokens and
        its meter's minted counter, a buyer's free COMMUNITY escrow (None where unreadable)."""
        members = {m["address"]: m for m in self.members()}
        found: dict[str, dict[str, Any]] = {}
        for row in self.istore.active_orders():
            member = members.get(row["owner"])
            if member is None:
                continue
            try:
                if row["kind"] == SELL:
                    # The unsettled sells first: one a batch the settling worker follows
                    # before the book is made still counts as sold (_uncommitted), whether
                    # or not the tokens read here were burned yet; counted by neither, it
                    # was offered again beyond the tokens, and the seller's sell was cut.
                    before = {f["id"]: int(f["billed_wh"]) for f in
                              self.istore.unsettled(row["owner"]) if f["side"] == SELL}
                    found[row["owner"]] = {
                        "unsettled": before,
                        "tokens": self.ledger.token_balance(row["owner"]),
                        "mint": self.ledger.intervals.meter_mint(member["meter_address"])}
                else:
                    found[row["owner"]] = {"free": self.ledger.escrow_free(row["owner"],
                                                                           COMMUNITY)}
            except Exception as err:  # a chain hiccup leaves this one out this time
                log.warning("%s left out of this interval: %s", row["owner"], err)
        return found

    def _book(self, n: int, chain: dict[str, dict[str, Any]]) -> tuple[list, list, list]:
        """Offers and bids of interval n from the active orders of members (and the orders
        they came from)."""
        members = {m["address"]: m for m in self.members()}
        offers, bids, used = [], [], []
        for row in self.istore.active_orders():
            if not self.orders.usable(row, n):
                self.istore.set_order_status(row["id"], EXPIRED)
                continue
            member, known = members.get(row["owner"]), chain.get(row["owner"])
            if member is None or known is None:
                continue
            wh, limit = self._quantity(row, member, n, known)
            if wh <= 0:
                continue
            used.append(row)
            if row["kind"] == SELL:
                offers.append(clearing.Offer(row["owner"], wh, limit))
            else:
                bids.append(clearing.Bid(row["owner"], wh, limit))
        return offers, bids, used

    def _store_fills(self, n: int, result: clearing.Clearing,
                     by_owner: dict[str, dict[str, Any]]) -> None:
        buyer_price = {f.buyer: f.price for f in result.fills}
        for seller, wh in result.sold.items():
            self.istore.add_fill(n, seller, SELL, by_owner[seller]["id"], wh, result.price or 0)
        for buyer, wh in result.bought.items():
            self.istore.add_fill(n, buyer, BUY, by_owner[buyer]["id"], wh, buyer_price[buyer])

    def _quantity(self, row: dict[str, Any], member: dict[str, Any], n: int,
                  known: dict[str, Any]) -> tuple[int, int]:
        """(Wh, price limit) an order offers or bids for interval n."""
        order = self.orders.typed_order(row)
        owner = row["owner"]
        if row["kind"] == SELL:
            return standing.interval_offer(order, self._uncommitted(owner, member, known, n),
                                           self._battery(member), order["reserveWh"]), \
                order["floorWeiPerKWh"]
        last = self._last_fill(owner, BUY, n)
        served = last is not None and last["metered_wh"] is not None \
            and last["metered_wh"] < last["wh"]
        metered = None if last is None else int(last["metered_wh"] or 0)
        # Fills not accounted yet (the interval that just ended) count at what they may cost;
        # each sum from one read, as the boundary worker may account them meanwhile (read as
        # accounted, then as not accounted, a fill accounted between was in neither).
        spent = owed_wei(self.istore.fills_since(owner, self._first_of_day(n)))
        unsettled = owed_wei(self.istore.not_settled(owner))
        free = max(known["free"] - unsettled, 0)
        return standing.interval_bid(order, metered, served, spent, free), order["capWeiPerKWh"]

    def _uncommitted(self, owner: str, member: dict[str, Any], known: dict[str, Any],
                     n: int) -> int:
        """Tokens a seller holds plus signed generation one reading may still mint, less what
        it sold unsettled (and what was settled since _chain_inputs read the chain;
        marketplace.interval_minting.unminted_wh: from its first position's baseline while
        the token's is pending, at most one mint window: a sell beyond them would be refused
        NO_TOKENS).

        The generation is counted to the reading that starts interval n as the store holds it
        (_capture), not the board's newest: every position over n's fill closes on that
        reading or a later one, never on one the cache held only meanwhile. A reading signed
        after the capture, then a next boundary whose cache lagged (its worker's bus
        reconnecting after a Redis restart) closed the fill on an older reading than the
        offer counted, and the sell was cut ("only N Wh minted for it are burned": a chaos
        day's seller settled 154 of its 156 Wh)."""
        meter = member["meter_address"]
        start = self.istore.readings(n)["start"].get(meter)
        unminted = 0
        if start is not None:
            unminted = unminted_wh(known["mint"], int(start["whIn"]),
                                   self._baseline_wh(owner, meter))
        # Sold and not settled, accounted (billed) or not yet (sold): one read, as the boundary
        # worker may account the interval just ended meanwhile (read as accounted, then as
        # not accounted, a fill accounted between the two was in neither and offered again).
        sells = [f for f in self.istore.not_settled(owner) if f["side"] == SELL]
        # Settled since the chain was read: their burn may not be in the tokens read.
        since = {f["id"] for f in sells}
        settled_since = sum(wh for i, wh in known["unsettled"].items() if i not in since)
        sold = sum(int(f["wh"] if f["billed_wh"] is None else f["billed_wh"]) for f in sells) \
            + settled_since
        return max(known["tokens"] + unminted - sold, 0)

    def _baseline_wh(self, owner: str, meter: str) -> int | None:
        """whIn of the reading a seller's next position starts from (its oldest unsettled
        sell fill's start reading; None: none yet, the next starts now)."""
        fills = [f for f in self.istore.not_settled(owner) if f["side"] == SELL]  # one read
        if not fills:
            return None
        start = self.istore.readings(min(f["n"] for f in fills))["start"].get(meter)
        return None if start is None else int(start["whIn"])

    def _battery(self, member: dict[str, Any]) -> int:
        """Wh in a seller's battery now, from its board's state of charge."""
        reading = self.switchboard.read(member["board_id"])
        soc = getattr(reading, "soc", None)
        if soc is None or not math.isfinite(soc):
            return 0
        return int(max(min(soc, 1.0), 0.0) * self.settings.battery_wh)

    def _last_fill(self, owner: str, side: str, n: int) -> dict[str, Any] | None:
        """The account's fill in the interval just before n, if it had one."""
        for fill in self.istore.fills_of(owner, 2):
            if fill["n"] == n - 1 and fill["side"] == side:
                return fill
        return None

    def _first_of_day(self, n: int) -> int:
        """The first interval of interval n's day."""
        return -(-self.boundaries.day(n) * DAY_S // self.boundaries.interval_s)

    # -- relays ----------------------------------------------------------------------------

    def _switch(self, result: clearing.Clearing) -> None:
        """Unmatched members' relays open first, then matched ones close with their budgets."""
        matched = {**{b: float(wh) for b, wh in result.bought.items()},
                   **{s: round(wh * (1 + self.settings.line_loss), 3)
                      for s, wh in result.sold.items()}}
        members = self.members()
        for member in members:
            if member["address"] not in matched:
                self.switchboard.switch(member["board_id"], False, None)
        for member in members:
            if member["address"] in matched:
                self.switchboard.switch(member["board_id"], True, matched[member["address"]])
