"""Opening a deal an auction made: the seller's signed offer and the winner's signed bid to the
escrow, once, retried while the chain is away, the next covered bid when the winner's cannot
open; then activation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from geth_private import TxRecord
from geth_private.records import TxStatus
from marketplace import offers, rules, signed
from marketplace.chain_deals import ChainDeals
from marketplace.clock import Clock
from marketplace.contract_enums import CLOSE_REASONS, CloseReason, DealStatus
from marketplace.ledger import Ledger
from marketplace.reports import DeliveryReports
from marketplace.settings import Settings
from marketplace.states import DealState, ListingState
from marketplace.store import Store
from marketplace.switchboard import Switchboard

log = logging.getLogger(__name__)

BASELINE_TRIES = 3  # baseline reports that may revert before the deal is given up


class DealOpening:
    """Sends openDeal for deals in `opening`, follows it, and activates the opened deal.

    txs: the settlement's in-flight transactions by (deal id, action); this part writes "open".
    """

    def __init__(
        self, store: Store, ledger: Ledger, switchboard: Switchboard, clock: Clock,
        settings: Settings, txs: dict[tuple[int, str], TxRecord],
        publish: Callable[[int], None], *, reports: DeliveryReports, chain: ChainDeals,
    ):
        self.store = store
        self.ledger = ledger
        self.switchboard = switchboard
        self.clock = clock
        self.settings = settings
        self._txs = txs
        self._publish = publish
        self.reports = reports  # sends the deal's first (baseline) report at activation
        self.chain = chain  # the escrow's deals as its events tell them
        self._retry_at: dict[int, float] = {}  # deal id -> when to send openDeal again
        self._backoff: dict[int, float] = {}
        self._failed_buyers: dict[int, set[str]] = {}  # deal id -> bidders whose open failed
        self._baseline_tries: dict[int, int] = {}  # deal id -> its baselines that reverted
        self._baseline_after: dict[int, int] = {}  # deal id -> its next baseline's readings' age
        self._abandoned: dict[int, str] = {}  # deal id -> why its baseline was given up
        # Deals whose last pass left them waiting on a change the settlement's agenda watches
        # (a transaction in flight, both meters' signed readings, the buyer's other deal).
        self.waiting: set[int] = set()

    def retrying(self) -> list[int]:
        """Deals whose openDeal failed to send and waits to be sent again."""
        return list(self._retry_at)

    def send(self, deal: dict[str, Any]) -> None:
        """Send a new deal's openDeal now, unless the seller's approval is still on its way."""
        if self._approved(deal):
            self._send_open(deal)

    def _approved(self, deal: dict[str, Any]) -> bool:
        """Whether the seller's approval (or permit) sent with the listing has left the queue
        (openDeal takes the tokens with it, so it waits for the approval's receipt)."""
        tx_hash = self.store.listing(deal["listing_id"])["approval_tx"]
        return offers.approval_settled(self.store, self.ledger, tx_hash)

    def _approval_overdue(self, deal: dict[str, Any]) -> bool:
        """Whether the bid validity after the auction's latest close is over (the deal still
        waiting for the seller's approval then cannot rely on the buyer's escrow any more)."""
        listing = self.store.listing(deal["listing_id"])
        latest = listing["closes_by"] or listing["deadline"]
        return self.clock.now() >= latest + self.settings.bid_validity_s

    def _send_open(self, deal: dict[str, Any]) -> None:
        """Send the escrow's openDeal from the seller's signed offer and the winning signed
        bid; on failure, retry later.

        Safe to repeat: the escrow opens one deal per offer and uses a signed bid once, and
        before sending again the market asks the escrow whether the offer's deal is open.
        """
        did = deal["id"]
        listing = self.store.listing(deal["listing_id"])
        won = self.store.bid(listing["winning_bid"])
        bid = {
            "offer": bytes.fromhex(listing["offer_hash"][2:]), "buyer": deal["buyer"],
            "buyerMeter": won["buyer_meter"], "priceWeiPerKWh": deal["price"],
            "maxWh": deal["energy_wh"], "nonce": won["nonce"], "expiry": won["expiry"],
        }
        try:
            self._txs[(did, "open")] = self.ledger.open_deal_async(
                signed.stored_offer(listing["offer"]),
                bytes.fromhex(listing["offer_signature"][2:]),
                bid, bytes.fromhex(won["signature"][2:]), deal["energy_wh"],
            )
            self._backoff.pop(did, None)
        except Exception as err:  # the chain is down or refused the send: nothing happened
            self._plan_retry(did, err)

    def _plan_retry(self, deal_id: int, err: Exception) -> None:
        """Try opening a deal again later, waiting twice as long each time (at most 30 s)."""
        wait = min(self._backoff.get(deal_id, 0.5) * 2, 30.0)
        self._backoff[deal_id] = wait
        self._retry_at[deal_id] = self.clock.now() + wait
        log.warning("openDeal for deal %s not sent (%s); retrying in %.0f s", deal_id, err, wait)

    def advance(self, row: dict[str, Any]) -> None:
        """One pass for a deal in `opening`: follow its openDeal, or send it (again)."""
        did = row["id"]
        self.waiting.discard(did)
        record = self._txs.get((did, "open"))
        if record is not None and record.status in ("queued", "pending"):
            self.waiting.add(did)
            return
        if record is not None and record.status == "mined":
            self._adopt(row, self.ledger.deal_id_from(record))
            return
        # No transaction in flight (a restart, a failed send) or one that reverted: the
        # escrow's own record of the listing's offer decides, so a deal is opened once.
        try:
            chain_id = row["chain_deal_id"] or self.ledger.deal_of_offer(self._offer_hash(row))
        except Exception as err:  # the chain is away: ask again after a backoff
            self._plan_retry(did, err)
            return
        if chain_id:
            self._adopt(row, chain_id)
        elif record is not None and record.status == "failed":
            self._fall_back(row, record.error or "openDeal reverted")
        elif self.clock.now() >= self._retry_at.get(did, 0.0):
            if self._approved(row):
                self._send_open(row)
            elif self._approval_overdue(row):
                # An approval never mined (a nonce gap, a fee under the base fee) must not
                # hold the deal, and the Ether it commits, forever: past the last moment the
                # escrow's notice keeps the bid covered, no bid of this listing can bind.
                self._fail_deal(did, "the seller's approval of the tokens was not mined by "
                                     "the time the winning bid had to open its deal")

    def _offer_hash(self, row: dict[str, Any]) -> bytes:
        return bytes.fromhex(self.store.listing(row["listing_id"])["offer_hash"][2:])

    def _adopt(self, row: dict[str, Any], chain_id: int) -> None:
        """Take the escrow's deal as this one only when it is this one: same buyer, seller,
        price and energy (a store that forgot, on a chain that remembers, must not take an old
        deal for a new one); its expiry is the escrow's."""
        if row["chain_deal_id"] == chain_id and row["expires_at"]:
            self._activate_when_free(row, chain_id)
            return
        chain = self.chain.deal(chain_id)
        differ = [f"{name} {chain[key]} ≠ {row[field]}" for name, key, field in (
            ("buyer", "buyer", "buyer"), ("seller", "seller", "seller"),
            ("price", "priceWeiPerKWh", "price"), ("energy", "energyWh", "energy_wh"))
            if chain[key] != row[field]]
        if differ:
            self._fail_deal(row["id"], f"the escrow's deal {chain_id} for this offer is not this "
                                       f"deal ({', '.join(differ)}): not adopted")
            return
        self.store.update_deal(row["id"], chain_deal_id=chain_id,
                               expires_at=int(chain["expiresAt"]))
        self._activate_when_free(self.store.deal(row["id"]), chain_id)

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
        self.waiting.add(row["id"])  # the buyer's deal moving on touches this one
        waiting = f"opened on chain; starts when this buyer's deal {busy['id']} ends"
        if row["chain_deal_id"] != chain_id or row["error"] != waiting:
            self.store.update_deal(row["id"], chain_deal_id=chain_id, error=waiting)
            self._publish(row["id"])

    def _activate(self, row: dict[str, Any], chain_id: int) -> None:
        """The escrow confirmed the deal: the baseline report, its receipt, then relays on.

        The baseline is both meters' first readings signed after the deal opened, sent to the
        escrow as the deal's first report; the relays close only once that report is mined
        (what flowed before a baseline that reverted would be free, and the store would keep
        a baseline the escrow never had). A reverted baseline is sent again from readings
        signed after it, at most BASELINE_TRIES times; then the deal fails and the operator
        closes it on chain for the fault (the escrow refunds the buyer). Nothing here waits:
        each tick looks at the report's status once. "active" is published only once the
        relays were switched, so whoever sees it can rely on energy flowing.
        """
        did = row["id"]
        chain = self.chain.deal(chain_id)
        if chain["status"] == DealStatus.CLOSED:
            self._closed_unstarted(row, chain)
            return
        if did in self._abandoned:
            self._abandon(row, chain_id, self._abandoned[did])
            return
        if chain["started"]:  # the baseline is on chain (this tick's or before a restart)
            self._switch_on(row, chain_id, chain)
            return
        record = self._txs.get((did, "report"))
        if record is not None and record.status != TxStatus.FAILED:
            self.waiting.add(did)  # its receipt, then its DeliveryStarted event
            self._note(row, chain_id, "opened on chain; waiting for the baseline report's "
                                      "receipt before the relays close")
            return
        if record is not None:  # the baseline reverted: fresh readings, or give up
            del self._txs[(did, "report")]
            tries = self._baseline_tries[did] = self._baseline_tries.get(did, 0) + 1
            log.warning("deal %s: baseline report %d failed: %s", did, tries, record.error)
            if tries >= BASELINE_TRIES:
                self._abandon(row, chain_id, f"the baseline report failed {tries} times "
                                             f"({record.error or 'reverted'})")
                return
        after = max(int(chain["openedAt"]), self._baseline_after.get(did, 0))
        pair = self.reports.baseline({**row, "chain_deal_id": chain_id}, chain_id, after)
        self.waiting.add(did)  # both meters' readings, or the baseline's receipt
        if pair is None:
            self._note(row, chain_id, "opened on chain; waiting for both meters' signed readings")
            return
        # A baseline sent again must not reuse a reading the escrow may have refused.
        self._baseline_after[did] = max(pair[0].timestamp, pair[1].timestamp) + 1
        self.store.update_deal(did, chain_deal_id=chain_id, baseline_wh=float(pair[1].wh_in),
                               reported_wh=0, error="opened on chain; waiting for the baseline "
                                                    "report's receipt before the relays close")
        self._publish(did)

    def _note(self, row: dict[str, Any], chain_id: int, waiting: str) -> None:
        """Say what an opened deal waits for (stored and published once)."""
        if row["chain_deal_id"] != chain_id or row["error"] != waiting:
            self.store.update_deal(row["id"], chain_deal_id=chain_id, error=waiting)
            self._publish(row["id"])

    def _switch_on(self, row: dict[str, Any], chain_id: int, chain: dict[str, Any]) -> None:
        """The escrow holds the baseline: store it as the escrow keeps it, budget, relays on."""
        did, base = row["id"], int(chain["buyerBaseWh"])
        self._baseline_tries.pop(did, None)
        self._baseline_after.pop(did, None)
        self.store.update_deal(did, chain_deal_id=chain_id, baseline_wh=float(base),
                               reported_wh=int(chain["deliveredWh"]), error=None)
        row = self.store.deal(did)
        # After a restart, what the buyer's meter signed since the baseline is used already.
        reading = self.reports.signed_of(row["buyer"])
        used = max(reading.wh_in - base, 0) if reading is not None else 0
        # Prepaid-meter behaviour: the buyer's board itself stops at the energy bought,
        # however late the portal's next look at the meter comes.
        self.switchboard.budget(row, max(float(row["energy_wh"]) - used, 0.0))
        self.switchboard.relays(row, on=True)
        self.store.update_deal(did, status=DealState.ACTIVE, opened=self.clock.now())
        self._publish(did)

    def _abandon(self, row: dict[str, Any], chain_id: int, error: str) -> None:
        """No baseline could be mined: the operator closes the deal for the fault (sent again
        while its send or its transaction fails); the deal fails once the escrow closed it."""
        did = row["id"]
        self._abandoned[did] = error
        record = self._txs.get((did, "fault"))
        if record is None or record.status == TxStatus.FAILED:
            try:
                self._txs[(did, "fault")] = self.ledger.close_for_fault_async(
                    chain_id, CloseReason.METER_OFFLINE)
            except Exception as err:  # the chain is away: the next tick sends it again
                log.warning("deal %s not closed for its failed baseline yet: %s", did, err)
        self._note(row, chain_id, f"{error}: the deal is closed on chain and the buyer refunded")

    def _closed_unstarted(self, row: dict[str, Any], chain: dict[str, Any]) -> None:
        """The escrow closed a deal that never started (its baseline failed): it failed."""
        did = row["id"]
        error = self._abandoned.pop(did, None) or "closed on chain before its baseline report"
        self._baseline_tries.pop(did, None)
        self._baseline_after.pop(did, None)
        paid = int(chain["paidWei"])
        self.store.update_deal(
            did, status=DealState.FAILED, error=f"{error}; the escrow refunded the buyer",
            closed=self.clock.now(), paid_wei=paid, refunded_wei=int(chain["lockedWei"]) - paid,
            close_reason=CLOSE_REASONS.get(int(chain["closeReason"]), "closed"))
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
