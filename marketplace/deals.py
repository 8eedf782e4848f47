"""The life of a deal after its auction: opened on the escrow once, delivered, closed.

A mixin of Market (it shares the market's store, ledger, grid, clock and hub): kept apart so
each file reads as one thing — market.py the auctions, this one the settlement.
"""

from __future__ import annotations

import logging
from typing import Any

from marketplace.errors import MarketError
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)

CLOSE_REASONS = {
    1: "completed", 2: "closed by buyer", 3: "closed by seller", 4: "expired",
    5: "meter offline", 6: "seller's supply exhausted",
}
METER_OFFLINE, SUPPLY_EXHAUSTED = 5, 6  # EnergyEscrow.CloseReason


class DealLifecycle:
    """Opening, delivery, faults and closing of deals; mixed into Market."""

    ledger: Ledger

    def _send_open(self, deal: dict[str, Any]) -> None:
        """Send the escrow's openDeal from the winning signed bid; on failure, retry later.

        Safe to repeat: the escrow opens one deal per listing and uses a signed bid once, and
        before sending again the market asks the escrow whether the deal is already open.
        """
        did = deal["id"]
        listing = self.store.listing(deal["listing_id"])
        won = self.store.bid(listing["winning_bid"])
        bid = {
            "listingId": listing["id"], "buyer": deal["buyer"], "seller": deal["seller"],
            "priceWeiPerKWh": deal["price"], "maxWh": deal["energy_wh"],
            "nonce": won["nonce"], "expiry": won["expiry"],
        }
        expires = deal["expires_at"] or int(self.clock.now()) + self.settings.deal_ttl_s
        try:
            self._txs[(did, "open")] = self.ledger.open_deal_async(
                bid, bytes.fromhex(won["signature"][2:]), deal["energy_wh"], expires
            )
            self._backoff.pop(did, None)
        except Exception as err:  # the chain is down or refused the send: nothing happened
            wait = min(self._backoff.get(did, 0.5) * 2, 30.0)
            self._backoff[did] = wait
            self._retry_at[did] = self.clock.now() + wait
            log.warning("openDeal for deal %s not sent (%s); retrying in %.0f s", did, err, wait)

    def _expired(self, row: dict[str, Any]) -> bool:
        """Past its expiry a deal stops: relays off, and the operator closes it on chain."""
        did = row["id"]
        if not row["expires_at"] or self.clock.now() < row["expires_at"]:
            return False
        self._relays(row, on=False)
        record = self._txs.get((did, "expire"))
        due = self.clock.now() >= self._expire_retry_at.get(did, 0.0)
        if (record is None or record.status == "failed") and due:
            try:
                self._txs[(did, "expire")] = self.ledger.close_deal_async(
                    self.ledger.operator, row["chain_deal_id"]
                )
            except Exception as err:  # e.g. the chain's clock is not there yet
                self._expire_retry_at[did] = self.clock.now() + 5.0
                log.info("expired deal %s not closed yet: %s", did, err)
        self._follow_chain(row)
        return True

    def _activate_when_free(self, row: dict[str, Any], chain_id: int) -> None:
        """Activate an opened deal once its buyer has no other deal under way.

        A buyer's meter counts all the energy its load draws: two deals of one buyer at once
        would bill the same Wh twice. So a buyer's deals deliver one after another, in the
        order their auctions closed; the escrow holds the waiting deal's Ether and tokens.
        (A seller may serve several buyers at once: each buyer's meter bills its own deal.)
        """
        busy = self.store.one(
            "SELECT id FROM deals WHERE id != ? AND buyer = ?"
            " AND status IN ('active', 'paused', 'closing') ORDER BY id LIMIT 1",
            row["id"], row["buyer"],
        )
        if busy is None:
            self._activate(row, chain_id)
            return
        waiting = f"opened on chain; starts when this buyer's deal {busy['id']} ends"
        if row["chain_deal_id"] != chain_id or row["error"] != waiting:
            self.store.update_deal(row["id"], chain_deal_id=chain_id, error=waiting)
            self.hub.publish("deal_updated", self.deal(row["id"]))

    def _activate(self, row: dict[str, Any], chain_id: int) -> None:
        """The escrow confirmed the deal: measure from now, give the budget, relays on.

        The baseline is committed first (the deal stays "opening"), so a restart between here
        and "active" measures from the same point; "active" is published only once the relays
        were switched, so whoever sees it can rely on energy flowing.
        """
        did = row["id"]
        used = 0.0
        reading = self.safe_read(self._board(row["buyer"]), fresh=True)
        if row["baseline_wh"] is None:
            self.store.update_deal(
                did, chain_deal_id=chain_id, baseline_wh=reading.wh_in if reading else 0.0,
                error=None,
            )
            row = self.store.deal(did)
        elif reading is not None:  # resumed after a restart: what flowed since counts
            used = max(reading.wh_in - row["baseline_wh"], 0.0)
        # Prepaid-meter behaviour: the buyer's board itself stops at the energy bought,
        # however late the portal's next look at the meter comes.
        self._budget(row, max(float(row["energy_wh"]) - used, 0.0))
        self._relays(row, on=True)
        self.store.update_deal(did, status="active", opened=self.clock.now())
        self.hub.publish("deal_updated", self.deal(did))

    def _advance_opening(self, row: dict[str, Any]) -> None:
        did = row["id"]
        record = self._txs.get((did, "open"))
        if record is not None and record.status in ("queued", "pending"):
            return
        if record is not None and record.status == "mined":
            self._activate_when_free(row, self.ledger.deal_id_from(record))
            return
        # No transaction in flight (a restart, a failed send) or one that reverted: the
        # escrow's own record decides, so a deal is opened exactly once.
        chain_id = row["chain_deal_id"] or self.ledger.deal_of_listing(row["listing_id"])
        if chain_id:
            self._activate_when_free(row, chain_id)
        elif record is not None and record.status == "failed":
            self._fail_deal(did, record.error or "openDeal reverted")
        elif self.clock.now() >= self._retry_at.get(did, 0.0):
            self._send_open(row)

    def _advance_deal(self, row: dict[str, Any]) -> None:
        did = row["id"]
        if row["status"] == "opening":
            self._advance_opening(row)
            return
        if row["status"] == "closing":
            record = self._txs.get((did, "close"))
            if record is not None and record.status == "failed":
                # The relays stay open; the buyer can press Close connection again.
                self.store.update_deal(did, status="active", error=record.error)
                del self._txs[(did, "close")]
        if row["status"] in ("active", "paused") and (self._expired(row) or self._faulty(row)):
            return
        if row["status"] == "active":
            delivered = self._delivered(row)
            if delivered >= row["energy_wh"]:
                self._relays(row, on=False)
            self._report(row, delivered)
        self._follow_chain(row)

    def _faulty(self, row: dict[str, Any]) -> bool:
        """Meters offline or the seller's battery empty: pause, resume, or end the deal."""
        did, now, settings = row["id"], self.clock.now(), self.settings
        boards = [self._board(row["seller"]), self._board(row["buyer"])]
        offline = [b for b in boards if not self._online(b)]
        if offline:
            if did not in self._offline_since:
                self._offline_since[did] = now
                # Both parties see it at once, before the grace period runs out.
                self.store.update_deal(did, error=f"meter {', '.join(offline)} offline")
                self.hub.publish("deal_updated", self.deal(did))
            since = self._offline_since[did]
            if row["status"] == "active" and now - since >= settings.offline_grace_s:
                self._relays(row, on=False)
                self.store.update_deal(did, status="paused",
                                       error=f"meter {', '.join(offline)} offline: paused")
                self.hub.publish("deal_updated", self.deal(did))
            if now - since >= settings.offline_close_s:
                self._close_for_fault(row, METER_OFFLINE)
            self._follow_chain(row)
            return True
        if self._offline_since.pop(did, None) is not None and row["status"] == "paused":
            # Back before the deal was ended: resume where the meter says it is. Relays first,
            # so whoever sees "active" can rely on energy flowing (as at activation).
            self._budget(row, float(row["energy_wh"] - row["delivered_wh"]))
            self._relays(row, on=True)
            self.store.update_deal(did, status="active", error=None)
            self.hub.publish("deal_updated", self.deal(did))
        seller = self.safe_read(boards[0])
        if seller is not None and seller.soc is not None and seller.soc <= settings.empty_soc:
            self._relays(row, on=False)
            self._close_for_fault(row, SUPPLY_EXHAUSTED)
            self._follow_chain(row)
            return True
        return False

    def _online(self, board_id: str) -> bool:
        online = getattr(self.grid, "online", None)
        try:
            return True if online is None else bool(online(board_id))
        except Exception:
            return False

    def _close_for_fault(self, row: dict[str, Any], reason: int) -> None:
        """The operator ends the deal on chain (once; retried if the send fails)."""
        record = self._txs.get((row["id"], "fault"))
        if record is not None and record.status != "failed":
            return
        self._report(row, row["delivered_wh"], force=True)  # pay what was measured first
        try:
            self._txs[(row["id"], "fault")] = self.ledger.close_for_fault_async(
                row["chain_deal_id"], reason
            )
        except Exception as err:
            log.warning("deal %s not closed for %s yet: %s", row["id"], CLOSE_REASONS[reason], err)

    def _delivered(self, row: dict[str, Any], fresh: bool = False) -> int:
        reading = self.safe_read(self._board(row["buyer"]), fresh)
        if reading is None or row["baseline_wh"] is None:
            return row["delivered_wh"]
        measured = int(reading.wh_in - row["baseline_wh"])
        delivered = max(row["delivered_wh"], min(row["energy_wh"], measured))
        if delivered != row["delivered_wh"]:
            self.store.update_deal(row["id"], delivered_wh=delivered)
            row["delivered_wh"] = delivered
            self.hub.publish("deal_updated", self.deal(row["id"]))
        return delivered

    def _report(self, row: dict[str, Any], delivered: int, force: bool = False) -> None:
        """Send the buyer meter's cumulative delivery when a step (or the end) is reached."""
        key = (row["id"], "report")
        inflight = self._txs.get(key)
        if inflight is not None and inflight.status == "failed":
            # The last report did not land: count from what the escrow has, so it is sent again.
            row["reported_wh"] = int(self.ledger.chain_deal(row["chain_deal_id"])["deliveredWh"])
            self.store.update_deal(row["id"], reported_wh=row["reported_wh"])
            del self._txs[key]
            inflight = None
        if inflight and inflight.status in ("queued", "pending") and not force:
            return
        due = delivered - row["reported_wh"]
        if due <= 0 or (due < self.settings.step_wh and delivered < row["energy_wh"] and not force):
            return
        meter = self._meters[self._board(row["buyer"])]
        try:
            self._txs[key] = self.ledger.report_delivery(meter, row["chain_deal_id"], delivered)
        except MarketError as err:
            log.warning("delivery report for deal %s not sent: %s", row["id"], err)
            return
        self.store.update_deal(row["id"], reported_wh=delivered)

    def _follow_chain(self, row: dict[str, Any]) -> None:
        """Mirror the escrow's view of the deal: payments so far, and whether it closed."""
        chain = self.ledger.chain_deal(row["chain_deal_id"])
        paid = int(chain["paidWei"])
        if paid != row["paid_wei"]:
            self.store.update_deal(row["id"], paid_wei=paid)
        if chain["status"] != 2:  # DealStatus.Closed
            if paid != row["paid_wei"]:
                self.hub.publish("deal_updated", self.deal(row["id"]))
            return
        self._relays(row, on=False)
        self._budget(row, None)
        self.store.update_deal(
            row["id"],
            status="closed",
            closed=self.clock.now(),
            delivered_wh=int(chain["deliveredWh"]),
            close_reason=CLOSE_REASONS.get(int(chain["closeReason"]), "closed"),
            refunded_wei=int(chain["lockedWei"]) - paid,
        )
        self.hub.publish("deal_updated", self.deal(row["id"]))

    def _fail_deal(self, deal_id: int, error: str) -> None:
        log.warning("deal %s could not be opened: %s", deal_id, error)
        self.store.update_deal(deal_id, status="failed", error=error, closed=self.clock.now())
        self.hub.publish("deal_updated", self.deal(deal_id))

    def _relays(self, row: dict[str, Any], on: bool) -> None:
        """Switch both parties' relays; off leaves a relay another active deal still needs."""
        for address in (row["seller"], row["buyer"]):
            if not on and self._needed_elsewhere(row["id"], address):
                continue
            board = self._board(address)
            try:
                self.grid.set_relay(board, on)
            except Exception as err:  # a board fault must not lose the deal's chain state
                log.error("relay of %s not switched %s: %s", board, "on" if on else "off", err)

    def _needed_elsewhere(self, deal_id: int, address: str) -> bool:
        """Whether another deal of this party is delivering (a seller serving two buyers)."""
        return self.store.one(
            "SELECT id FROM deals WHERE id != ? AND status = 'active' AND (seller = ? OR buyer = ?)"
            " LIMIT 1", deal_id, address, address,
        ) is not None

    def _budget(self, row: dict[str, Any], wh: float | None) -> None:
        board = self._board(row["buyer"])
        try:
            self.grid.set_budget(board, wh)
        except Exception as err:  # the relay commands still bound the deal
            log.error("budget of %s not set to %s: %s", board, wh, err)

