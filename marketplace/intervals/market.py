"""The interval market: standing orders cleared at every boundary, settled on chain in batches."""

from __future__ import annotations

import logging
from typing import Any

from marketplace.clock import Clock
from marketplace.events import Hub
from marketplace.intervals import modes, views
from marketplace.intervals.batching import Batching
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import StandingOrders
from marketplace.intervals.step import BoundaryStep
from marketplace.intervals.store import INTERVALS, IntervalStore
from marketplace.lease import SETTLEMENT, Lease
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.store import Store
from marketplace.switchboard import Switchboard

log = logging.getLogger(__name__)

MAX_INTERVAL = 2**32  # IntervalSettlement's interval numbers are uint32


class IntervalMarket:
    """Commands and views of the interval market, and its loop's step()."""

    def __init__(self, store: Store, ledger: Ledger, switchboard: Switchboard, clock: Clock,
                 hub: Hub, settings: Settings, lease: Lease | None = None):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.settings = settings
        self.istore = IntervalStore(store)
        self.boundaries = Boundaries(settings.interval_s, settings.time_factor)
        self.lease = lease or Lease(store, SETTLEMENT, settings.lease_s)
        self.orders = StandingOrders(self.istore, ledger, clock, settings, self.boundaries)
        self.boundary = BoundaryStep(self.istore, self.orders, ledger, switchboard, hub,
                                     settings, self.boundaries)
        self.batching = Batching(self.istore, self.orders, ledger, clock, settings,
                                 self.boundaries, self.boundary.members, switchboard.signed)
        self.switchboard = switchboard
        if self.boundaries.index(clock.now()) >= MAX_INTERVAL:
            # The contract numbers intervals in a uint32: batches could not be settled.
            log.error("interval numbers pass 2**32 with intervals of %.3f s on this clock: "
                      "raise INTERVAL_S or lower the time factor", self.boundaries.length)

    # -- commands --------------------------------------------------------------------------

    def order_terms(self, owner: str, kind: object, fields: Any) -> dict[str, Any]:
        """The EIP-712 SellOrder/BuyOrder the owner signs, from the page's fields."""
        return self.orders.terms(owner, kind, fields)

    def set_order(self, owner: str, kind: object, order: object,
                  signature: object) -> dict[str, Any]:
        """Keep the owner's signed order (checked) as its active one, replacing the old."""
        kind, terms, sig = self.orders.parse(owner, kind, order, signature)
        return self.orders.store(owner, kind, terms, sig)

    def cancel_order(self, owner: str) -> dict[str, Any]:
        """End the owner's order off-chain now; with the cancelSellOrder/cancelBuyOrder the
        owner may sign to end it on chain as well: None while fills of it wait for their
        settlement (a cancel on chain settles nothing of the order after it), or when it
        cannot be prepared."""
        view = self.orders.cancel(owner)
        n = self.boundaries.index(self.clock.now())
        waiting = [f for f in self.istore.fills_of(owner, 200)
                   if f["order_id"] == view["id"] and f["settled_batch"] is None
                   and f["n"] <= n]
        view["cancel_tx"] = None if waiting else self._cancel_tx(owner, view)
        return view

    def set_mode(self, owner: str, mode: object) -> dict[str, Any]:
        """Switch the owner's market at the next boundary with nothing open in the old one."""
        return modes.request(self.istore, owner, mode)

    # -- views -----------------------------------------------------------------------------

    def order_of(self, owner: str) -> dict[str, Any] | None:
        """The owner's active standing order, or None."""
        return self.orders.view(self.istore.active_order(owner))

    def mode_of(self, owner: str) -> str:
        """The market an account trades in now: 'lots' or 'intervals'."""
        return self.istore.mode(owner)["mode"]

    def mode_view(self, owner: str) -> dict[str, Any]:
        """The account's market, since when, and a switch it asked for."""
        return modes.mode_view(self.istore, owner)

    def next_clearing_at(self) -> float:
        """When the next boundary comes (market clock)."""
        return self.boundaries.end(self.boundaries.index(self.clock.now()))

    def interval_view(self, n: int) -> dict[str, Any] | None:
        """Interval n as published (None when it never opened)."""
        return views.interval_view(self.istore, self.boundaries, n)

    def history(self, limit: int = 96) -> list[dict[str, Any]]:
        """The last intervals, oldest first: bounds, price, Wh."""
        return views.history(self.istore, self.boundaries, limit)

    def fills_of(self, owner: str, limit: int = 96) -> list[dict[str, Any]]:
        """The owner's fills, newest first."""
        return views.fills_of(self.istore, owner, limit)

    def current_of(self, owner: str) -> dict[str, Any]:
        """This interval's fill of the owner so far and when its fills settle."""
        return views.current_of(self.istore, self.boundaries, self.switchboard, owner,
                                self.boundaries.index(self.clock.now()),
                                self.settings.settle_wh)

    def batches(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Batches as sent, oldest first (public: the operator's signed settlement input)."""
        return [{"id": b["id"], "through_n": b["through_n"], "status": b["status"],
                 "tx_hash": b["tx_hash"], "batch": b["positions"],
                 "operator_sig": b["operator_sig"]}
                for b in self.istore.batches(after, limit)]

    def in_intervals(self, address: str) -> bool:
        """Whether an account trades in the interval market now."""
        return self.mode_of(address) == INTERVALS

    # -- the loop --------------------------------------------------------------------------

    def step(self) -> dict[str, Any] | None:
        """One pass: open the boundary that came (claimed, so once across workers), then, on
        the settlement lease's holder, batch the due positions; the boundary's summary."""
        now = self.clock.now()
        n = self.boundaries.index(now)
        last = self.istore.last_n()
        summary = None
        if (last is None or n > last) and self.istore.claim(n, now, self.lease.worker,
                                                           self.settings.pricing):
            summary = self.boundary.run(n, last)
        if self.lease.renew():
            self.batching.step(n - 1)
        return summary

    def _cancel_tx(self, owner: str, view: dict[str, Any]) -> dict[str, Any] | None:
        from marketplace import signed

        try:
            row = self.istore.order(view["id"])
            tx = self.ledger.intervals.cancel_order_tx(row["kind"], self.orders.typed_order(row))
            label = "Cancel standing order"
            return signed.prepared(self.ledger.prepare(owner, tx, label), label)
        except Exception as err:  # the off-chain cancel stands; the page may still send one
            log.info("cancelOrder of %s not prepared: %s", owner, err)
            return None
