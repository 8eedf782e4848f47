"""The settlement: a deal after its auction, opened on the escrow once, delivered, closed.

Only the worker holding the settlement lease (marketplace.lease) advances deals: it alone
sends the operator's and the meters' transactions, so workers sharing one chain account never
race for its nonces.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from geth_private import Signer, TxRecord
from geth_private.signed import SignedCall
from marketplace import rules, signed
from marketplace.clock import Clock
from marketplace.contract_enums import CLOSE_REASONS, CloseReason, DealStatus
from marketplace.errors import DealNotActive, InvalidInput, MarketError, NotAllowed, NotFound
from marketplace.events import Hub
from marketplace.ledger import LABELS, Ledger
from marketplace.settings import Settings
from marketplace.states import DealState, ListingState
from marketplace.store import Store
from marketplace.switchboard import Switchboard
from marketplace.views import deal_view

log = logging.getLogger(__name__)
APPROVAL_WAIT_S = 60.0  # how long a deal waits to open for its seller's approval to be mined


class Settlement:
    """Opens, activates, reports, pauses, closes and follows deals; owns their transactions.

    lock: the market's own, shared with the auction book (see AuctionBook).
    """

    def __init__(
        self, store: Store, ledger: Ledger, switchboard: Switchboard, clock: Clock, hub: Hub,
        settings: Settings, lock: threading.RLock,
    ):
        self.store = store
        self.ledger = ledger
        self.switchboard = switchboard
        self.clock = clock
        self.hub = hub
        self.settings = settings
        self._lock = lock
        self._meters: dict[str, Signer] = {}  # board id -> meter key
        self._txs: dict[tuple[int, str], TxRecord] = {}  # (deal id, action) -> in flight
        self._retry_at: dict[int, float] = {}  # deal id -> when to send openDeal again
        self._backoff: dict[int, float] = {}
        self._expire_retry_at: dict[int, float] = {}
        self._offline_since: dict[int, float] = {}  # deal id -> when a meter went offline
        self._failed_buyers: dict[int, set[str]] = {}  # deal id -> bidders whose open failed

    # -- meters and what is in flight ------------------------------------------------------

    def add_meter(self, board_id: str, meter: Signer) -> None:
        """The key a board's meter signs its delivery reports with."""
        self._meters[board_id] = meter

    def meter(self, board_id: str) -> Signer:
        """The meter key of a board, or NotFound."""
        if board_id not in self._meters:
            raise NotFound(f"no meter key for board {board_id}")
        return self._meters[board_id]

    def transactions(self) -> dict[tuple[int, str], TxRecord]:
        """The deals' transactions this worker sent and still follows: (deal id, action)."""
        return dict(self._txs)

    def retrying(self) -> list[int]:
        """Deals whose openDeal failed to send and waits to be sent again."""
        return list(self._retry_at)

    # -- queries ---------------------------------------------------------------------------

    def deal(self, deal_id: object) -> dict[str, Any]:
        """One deal as the pages show it (while closing: the final report's hash)."""
        view = deal_view(self.store, self._deal_row(deal_id))
        final = self._txs.get((view["id"], "report"))
        if view["status"] == DealState.CLOSING and final is not None:
            view["final_report"] = {"tx_hash": final.tx_hash, "status": final.status}
        return view

    def deals(self, address: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first; only those an address is party to when given."""
        rows = self.store.deals()
        if address:
            rows = [r for r in rows if address in (r["buyer"], r["seller"])]
        return [deal_view(self.store, r) for r in rows]

    # -- commands and the loop -------------------------------------------------------------

    def prepare_close(self, party: str, deal_id: object) -> dict[str, Any]:
        """The closeDeal a party signs for Close connection (checked and simulated first)."""
        row = self._closable(party, deal_id)
        tx = self.ledger.user_tx("EnergyEscrow", "closeDeal", [row["chain_deal_id"]])
        label = "Close connection"
        return signed.prepared(self.ledger.prepare(party, tx, label), label)

    def close_connection(
        self, party: str, deal_id: object, signed_close: object = None
    ) -> dict[str, Any]:
        """The buyer (or seller) ends a deal: relays off, the last delivery reported, then the
        party's own signed closeDeal sent once that report has its receipt (the last Wh is
        paid before the escrow refunds the rest). Without signed_close (a wallet that sends
        itself), the deal waits in closing; the view's final_report names the report to wait
        for before the wallet sends closeDeal."""
        call = None if signed_close is None else signed.signed_call(signed_close, "close")
        with self._lock:
            row = self._closable(party, deal_id)
            did = row["id"]
            if call is not None:
                self._check_close(party, row, call)
            self.switchboard.relays(row, on=False)
            self._report(row, self._delivered(row, fresh=True), force=True)
            final = self._txs.get((did, "report"))
            if call is not None:
                self._txs[(did, "close")] = self.ledger.submit(call, "Close connection", final)
            self.store.update_deal(did, status=DealState.CLOSING)
        view = self.deal(did)
        self.hub.publish("deal_updated", view)
        return view

    def begin(self, deal_id: int, send: bool) -> None:
        """A deal an auction just made: send its openDeal now (send) or at a later pass."""
        if send:
            self._send_open(self.store.deal(deal_id))
        self._publish(deal_id)

    def advance_all(self) -> None:
        """One pass over every live deal: follow its transactions, faults and delivery."""
        for row in self.store.live_deals():
            try:
                self._advance(row)
            except Exception as err:  # one deal's trouble (a chain hiccup) spares the rest
                log.warning("deal %s not advanced this tick: %s", row["id"], err)

    # -- delivery and the chain's view -----------------------------------------------------

    def _publish(self, deal_id: int) -> None:
        self.hub.publish("deal_updated", self.deal(deal_id))

    def _close_for_fault(self, row: dict[str, Any], reason: CloseReason) -> None:
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
        """Wh delivered so far by the buyer's meter (stored and published when it moved)."""
        reading = self.switchboard.read(self.switchboard.board_of(row["buyer"]), fresh)
        if reading is None or row["baseline_wh"] is None:
            return row["delivered_wh"]
        measured = int(reading.wh_in - row["baseline_wh"])
        delivered = max(row["delivered_wh"], min(row["energy_wh"], measured))
        if delivered != row["delivered_wh"]:
            self.store.update_deal(row["id"], delivered_wh=delivered)
            row["delivered_wh"] = delivered
            self._publish(row["id"])
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
        meter = self._meters[self.switchboard.board_of(row["buyer"])]
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
        if chain["status"] != DealStatus.CLOSED:
            if paid != row["paid_wei"]:
                self._publish(row["id"])
            return
        self.switchboard.relays(row, on=False)
        self.switchboard.budget(row, None)
        self.store.update_deal(
            row["id"],
            status=DealState.CLOSED,
            closed=self.clock.now(),
            delivered_wh=int(chain["deliveredWh"]),
            close_reason=CLOSE_REASONS.get(int(chain["closeReason"]), "closed"),
            refunded_wei=int(chain["lockedWei"]) - paid,
        )
        self._publish(row["id"])

    # -- opening ---------------------------------------------------------------------------

    def _send_open(self, deal: dict[str, Any]) -> None:
        """Send the escrow's openDeal from the winning signed bid; on failure, retry later.

        Safe to repeat: the escrow opens one deal per listing and uses a signed bid once, and
        before sending again the market asks the escrow whether the deal is already open.
        """
        did = deal["id"]
        if self._approval_on_its_way(deal["seller"]):
            self._retry_at[did] = self.clock.now()  # it would revert on the allowance: next pass
            return
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

    def _approval_on_its_way(self, seller: str) -> bool:
        """Whether the seller's approval (signed with its listing, queued, not awaited) is
        still on its way to a block; one the node has not taken for a minute is not waited for."""
        now = time.time()
        return any(r.label == LABELS["approve"] and now - r.created < APPROVAL_WAIT_S
                   for r in self.ledger.txm.pending(seller))

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
            self._fall_back(row, record.error or "openDeal reverted")
        elif self.clock.now() >= self._retry_at.get(did, 0.0):
            self._send_open(row)

    def _activate_when_free(self, row: dict[str, Any], chain_id: int) -> None:
        """Activate an opened deal once its buyer has no other deal under way.

        A buyer's meter counts all the energy its load draws: two deals of one buyer at once
        would bill the same Wh twice. So a buyer's deals deliver one after another, in the
        order their auctions closed; the escrow holds the waiting deal's Ether and tokens.
        (A seller may serve several buyers at once: each buyer's meter bills its own deal.)
        """
        busy = self.store.deal_under_way(row["buyer"], row["id"])
        if busy is None:
            self._activate(row, chain_id)
            return
        waiting = f"opened on chain; starts when this buyer's deal {busy['id']} ends"
        if row["chain_deal_id"] != chain_id or row["error"] != waiting:
            self.store.update_deal(row["id"], chain_deal_id=chain_id, error=waiting)
            self._publish(row["id"])

    def _activate(self, row: dict[str, Any], chain_id: int) -> None:
        """The escrow confirmed the deal: measure from now, give the budget, relays on.

        The baseline is committed first (the deal stays "opening"), so a restart between here
        and "active" measures from the same point; "active" is published only once the relays
        were switched, so whoever sees it can rely on energy flowing.
        """
        did = row["id"]
        used = 0.0
        reading = self.switchboard.read(self.switchboard.board_of(row["buyer"]), fresh=True)
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
        self.switchboard.budget(row, max(float(row["energy_wh"]) - used, 0.0))
        self.switchboard.relays(row, on=True)
        self.store.update_deal(did, status=DealState.ACTIVE, opened=self.clock.now())
        self._publish(did)

    def _fall_back(self, row: dict[str, Any], error: str) -> None:
        """The winner's deal cannot open: the next bid its bidder's escrow covers wins
        instead (highest first, earliest on a tie); with none left, the deal fails."""
        did = row["id"]
        del self._txs[(did, "open")]
        failed = self._failed_buyers.setdefault(did, set())
        failed.add(row["buyer"])
        now = int(self.clock.now())
        offers = [(b["id"], b["price"], b["bidder"]) for b in self.store.bids(row["listing_id"])
                  if b["bidder"] not in failed and b["expiry"] > now]
        while offers:
            bid_id, price, bidder = rules.winner(offers)
            offers = [o for o in offers if o[2] != bidder]
            if self.ledger.escrow_free(bidder) >= rules.cost_wei(price, row["energy_wh"]):
                log.warning("deal %s: the winner's deal could not open (%s); bid %s of %s "
                            "is next and covered", did, error, bid_id, bidder)
                self.store.set_listing_status(row["listing_id"], ListingState.SOLD, bid_id)
                self.store.update_deal(did, buyer=bidder, price=price,
                                       error=f"the winner's deal could not open ({error}); "
                                             "the next covered bid won")
                self._send_open(self.store.deal(did))
                self._publish(did)
                return
            failed.add(bidder)
        self._failed_buyers.pop(did, None)
        self._fail_deal(did, error)

    def _fail_deal(self, deal_id: int, error: str) -> None:
        log.warning("deal %s could not be opened: %s", deal_id, error)
        self.store.update_deal(
            deal_id, status=DealState.FAILED, error=error, closed=self.clock.now()
        )
        self._publish(deal_id)

    # -- delivering and closing ------------------------------------------------------------

    def _advance(self, row: dict[str, Any]) -> None:
        did = row["id"]
        if row["status"] == DealState.OPENING:
            self._advance_opening(row)
            return
        if row["status"] == DealState.CLOSING:
            record = self._txs.get((did, "close"))
            if record is not None and record.status == "failed":
                # The relays stay open; the buyer can press Close connection again.
                self.store.update_deal(did, status=DealState.ACTIVE, error=record.error)
                del self._txs[(did, "close")]
        if row["status"] in (DealState.ACTIVE, DealState.PAUSED) and (
            self._expired(row) or self._faulty(row)
        ):
            return
        if row["status"] == DealState.ACTIVE:
            delivered = self._delivered(row)
            if delivered >= row["energy_wh"]:
                self.switchboard.relays(row, on=False)
            self._report(row, delivered)
        self._follow_chain(row)

    def _expired(self, row: dict[str, Any]) -> bool:
        """Past its expiry a deal stops: relays off, and the operator closes it on chain."""
        did = row["id"]
        if not row["expires_at"] or self.clock.now() < row["expires_at"]:
            return False
        self.switchboard.relays(row, on=False)
        record = self._txs.get((did, "expire"))
        due = self.clock.now() >= self._expire_retry_at.get(did, 0.0)
        if (record is None or record.status == "failed") and due:
            try:
                self._txs[(did, "expire")] = self.ledger.close_expired_async(
                    row["chain_deal_id"]
                )
            except Exception as err:  # e.g. the chain's clock is not there yet
                self._expire_retry_at[did] = self.clock.now() + 5.0
                log.info("expired deal %s not closed yet: %s", did, err)
        self._follow_chain(row)
        return True

    def _faulty(self, row: dict[str, Any]) -> bool:
        """Meters offline or the seller's battery empty: pause, resume, or end the deal."""
        did, now, settings = row["id"], self.clock.now(), self.settings
        boards = [self.switchboard.board_of(row["seller"]), self.switchboard.board_of(row["buyer"])]
        offline = [b for b in boards if not self.switchboard.online(b)]
        if offline:
            if did not in self._offline_since:
                self._offline_since[did] = now
                # Both parties see it at once, before the grace period runs out.
                self.store.update_deal(did, error=f"meter {', '.join(offline)} offline")
                self._publish(did)
            since = self._offline_since[did]
            if row["status"] == DealState.ACTIVE and now - since >= settings.offline_grace_s:
                self.switchboard.relays(row, on=False)
                self.store.update_deal(did, status=DealState.PAUSED,
                                       error=f"meter {', '.join(offline)} offline: paused")
                self._publish(did)
            if now - since >= settings.offline_close_s:
                self._close_for_fault(row, CloseReason.METER_OFFLINE)
            self._follow_chain(row)
            return True
        if self._offline_since.pop(did, None) is not None and row["status"] == DealState.PAUSED:
            # Back before the deal was ended: resume where the meter says it is. Relays first,
            # so whoever sees "active" can rely on energy flowing (as at activation).
            self.switchboard.budget(row, float(row["energy_wh"] - row["delivered_wh"]))
            self.switchboard.relays(row, on=True)
            self.store.update_deal(did, status=DealState.ACTIVE, error=None)
            self._publish(did)
        seller = self.switchboard.read(boards[0])
        if seller is not None and seller.soc is not None and seller.soc <= settings.empty_soc:
            self.switchboard.relays(row, on=False)
            self._close_for_fault(row, CloseReason.SUPPLY_EXHAUSTED)
            self._follow_chain(row)
            return True
        return False

    def _closable(self, party: str, deal_id: object) -> dict[str, Any]:
        """A deal the party may close now, or NotAllowed/DealNotActive."""
        row = self._deal_row(deal_id)
        if party not in (row["buyer"], row["seller"]):
            raise NotAllowed("only the buyer or the seller can close this deal")
        inflight = self._txs.get((row["id"], "close"))
        waiting = row["status"] == DealState.CLOSING and (
            inflight is None or inflight.status == "failed")
        if row["status"] != DealState.ACTIVE and not waiting:
            raise DealNotActive(f"deal {row['id']} is {row['status']}, not delivering")
        return row

    def _check_close(self, party: str, row: dict[str, Any], call: SignedCall) -> None:
        """The signed transaction is the party's closeDeal of this very deal."""
        signed.check_signed_by(call, party, self.ledger.bid_domain()[0], "close")
        called = self.ledger.function_of(call)
        if called != ("EnergyEscrow", "closeDeal", (row["chain_deal_id"],)):
            raise InvalidInput(f"the signed close must be closeDeal({row['chain_deal_id']}) "
                               "on the escrow")

    def _deal_row(self, deal_id: object) -> dict[str, Any]:
        """A deal's stored row from an id a person gave, or InvalidInput/NotFound."""
        return rules.stored(self.store.deal, deal_id, "deal")
