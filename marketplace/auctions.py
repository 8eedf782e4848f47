"""The auction book: listings and bids in the store; an auction's close makes the deal's row."""

from __future__ import annotations

import logging
import secrets
import threading
from collections import defaultdict
from typing import Any

from eth_account.signers.local import LocalAccount

from marketplace import rules
from marketplace.clock import Clock
from marketplace.errors import CannotCancel, NotAllowed
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.parties import participant
from marketplace.settings import Settings
from marketplace.states import ListingState
from marketplace.store import Store
from marketplace.views import listing_view

log = logging.getLogger(__name__)


class AuctionBook:
    """Lists energy, takes signed bids, cancels, and closes due auctions into deals.

    lock: the market's own, shared with the settlement, so a command and a tick's pass in
    this process run one at a time; the store's row locks order them across workers.
    """

    def __init__(
        self, store: Store, ledger: Ledger, clock: Clock, hub: Hub, settings: Settings,
        lock: threading.RLock, worker: str,
    ):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.hub = hub
        self.settings = settings
        self.worker = worker  # this process's name in the logs of the auctions it closes
        self._lock = lock

    # -- queries ---------------------------------------------------------------------------

    def listing(self, listing_id: int) -> dict[str, Any]:
        """One listing as the pages show it."""
        row = self._listing_row(listing_id)
        return listing_view(self.store, row, self.clock.now(), self.settings.limits)

    def listings(self, status: str | None = ListingState.OPEN) -> list[dict[str, Any]]:
        """Listings as the pages show them (open ones by default)."""
        now = self.clock.now()
        # Bids and names in one query each, not three queries per listing: every browser
        # that connects gets this snapshot (bench/portal.py, 1,000 open auctions).
        bids: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for bid in self.store.bids_on_listings(status):
            bids[bid["listing_id"]].append(bid)
        names = {p["address"]: p["name"] for p in self.store.participants()}
        return [
            listing_view(self.store, row, now, self.settings.limits, bids[row["id"]], names)
            for row in self.store.listings(status)
        ]

    def unlisted_wh(self, address: str) -> int:
        """Tokens an address holds that no open listing offers."""
        return self.ledger.token_balance(address) - self.store.listed_wh(address)

    # -- commands --------------------------------------------------------------------------

    def create_listing(
        self, seller: LocalAccount, energy_wh: object, start_price: object, duration_s: object
    ) -> dict[str, Any]:
        """List energy for auction; approves the escrow to take it if the auction sells."""
        limits = self.settings.limits
        wh = rules.parse_int(energy_wh, "energy (Wh)", limits.min_energy_wh, limits.max_energy_wh)
        price = rules.parse_int(start_price, "start bid (wei per kWh)", 1, rules.MAX_WEI)
        duration = rules.parse_int(
            duration_s, "duration (s)", limits.min_duration_s, limits.max_duration_s
        )
        if participant(self.store, seller.address)["role"] != "producer":
            raise NotAllowed("only producers can list energy")
        with self._lock:
            rules.check_listing(wh, self.unlisted_wh(seller.address))
            listed = self.store.listed_wh(seller.address)
            self.ledger.approve_escrow(seller, listed + wh)
            now = self.clock.now()
            listing_id = self.store.add_listing(
                seller.address, wh, price, now, now + duration,
                closes_by=now + duration + limits.soft_close_cap_s,
            )
        view = self.listing(listing_id)
        self.hub.publish("listing_created", view)
        return view

    def place_bid(self, bidder: LocalAccount, listing_id: object, price: object) -> dict[str, Any]:
        """Place a bid signed with the bidder's key; returns once it is stored durably."""
        amount = rules.parse_int(price, "bid (wei per kWh)", 1, rules.MAX_WEI)
        buyer = participant(self.store, bidder.address)
        if buyer["role"] != "consumer":
            raise NotAllowed("only consumers can bid")
        if buyer["board_id"] is None:
            raise NotAllowed("no meter board measures your load yet; the operator enrolls one")
        free = self.ledger.escrow_free(bidder.address)  # chain reads: before any row lock
        # A request made before this bid may complete before the deal opens (one made after
        # waits out the escrow's notice, longer than any auction): it covers no bid.
        withdrawing = self.ledger.withdrawal_of(bidder.address)["amount"]
        with self._lock, self.store.transaction():
            # The listing's row stays locked until this bid is stored, so a bid through another
            # worker waits and then sees this one as the highest (and a close sees both).
            row = self.store.lock_listing(self._listing_row(listing_id)["id"])
            lid = row["id"]
            highest = max((b["price"] for b in self.store.bids(lid)), default=None)
            rules.check_bid(
                seller=row["seller"],
                bidder=bidder.address,
                start_price=row["start_price"],
                highest=highest,
                price=amount,
                energy_wh=row["energy_wh"],
                deadline=row["deadline"],
                now=self.clock.now(),
                status=row["status"],
                free_wei=free - self._committed(bidder.address, lid),
                limits=self.settings.limits,
                withdrawing_wei=withdrawing,
            )
            self._store_bid(bidder, row, amount)
        view = self.listing(lid)
        self.hub.publish("bid_placed", view)
        return view

    def cancel_listing(self, seller: LocalAccount, listing_id: object) -> dict[str, Any]:
        """Withdraw a listing: only its seller, only while open and before the first bid."""
        with self._lock, self.store.transaction():
            # Locked like a bid and a close: a bid through another worker lands before or not.
            row = self.store.lock_listing(self._listing_row(listing_id)["id"])
            lid = row["id"]
            if row["seller"] != seller.address:
                raise NotAllowed("only the seller can cancel a listing")
            if row["status"] != ListingState.OPEN or row["deadline"] <= self.clock.now():
                raise CannotCancel(f"listing {lid} has ended")
            if self.store.bids(lid):
                raise CannotCancel("a listing that has bids cannot be cancelled: bids bind")
            self.store.set_listing_status(lid, ListingState.CANCELLED)
        view = self.listing(lid)
        self.hub.publish("listing_closed", view)
        return view

    def close(self, listing_id: int) -> int | None:
        """Close an auction whose deadline came: sold (the new deal's id) or unsold (None)."""
        deal_id = None
        with self.store.transaction():
            # Claimed under the row lock: a worker that saw the same deadline finds the listing
            # closed (or extended by a late bid) and leaves it.
            row = self.store.lock_listing(listing_id)
            if row["status"] != ListingState.OPEN or row["deadline"] > self.clock.now():
                return None
            bids = self.store.bids(row["id"])
            best = rules.winner([(b["id"], b["price"], b["bidder"]) for b in bids])
            if best is None:
                self.store.set_listing_status(row["id"], ListingState.UNSOLD)
            else:
                bid_id, price, buyer = best
                self.store.set_listing_status(row["id"], ListingState.SOLD, bid_id)
                expires = int(self.clock.now()) + self.settings.deal_ttl_s
                deal_id = self.store.add_deal(
                    row["id"], buyer, row["seller"], price, row["energy_wh"], expires
                )
        log.info("auction %s closed by worker %s: %s", row["id"], self.worker,
                 f"deal {deal_id}" if deal_id else "unsold")
        self.hub.publish("listing_closed", self.listing(row["id"]))
        return deal_id

    # -- internals -------------------------------------------------------------------------

    def _store_bid(self, bidder: LocalAccount, row: dict[str, Any], amount: int) -> None:
        """Sign the bid with the bidder's key, store it, and extend a soft-closing deadline."""
        lid = row["id"]
        bid = {
            "listingId": lid,
            "buyer": bidder.address,
            "seller": row["seller"],
            "priceWeiPerKWh": amount,
            "maxWh": row["energy_wh"],
            "nonce": secrets.randbits(64),
            "expiry": int(row["closes_by"] or row["deadline"]) + self.settings.bid_validity_s,
        }
        # Binding: the escrow opens a deal only from a bid the buyer's key signed.
        signature = self.ledger.sign_bid(bidder, bid)
        now = self.clock.now()
        self.store.add_bid(lid, bidder.address, amount, now, bid["nonce"], bid["expiry"], signature)
        later = rules.extended_deadline(
            row["deadline"], row["closes_by"] or row["deadline"], now, self.settings.limits
        )
        if later != row["deadline"]:
            self.store.set_deadline(lid, later)

    def _listing_row(self, listing_id: object) -> dict[str, Any]:
        """A listing's stored row from an id a person gave, or InvalidInput/NotFound."""
        return rules.stored(self.store.listing, listing_id, "listing")

    def _committed(self, bidder: str, except_listing: int) -> int:
        """Escrow a bidder already needs for open auctions it leads (other than one)."""
        # One query for the bids on the open listings this bidder bid on, not one per open
        # listing: a bid's cost stays flat as open auctions pile up (bench/portal.py).
        bids: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        energy: dict[int, int] = {}
        for row in self.store.rival_bids(bidder, except_listing):
            bids[row["listing_id"]].append((row["id"], row["price"], row["bidder"]))
            energy[row["listing_id"]] = row["energy_wh"]
        total = 0
        for listing_id, offers in bids.items():
            best = rules.winner(offers)
            if best and best[2] == bidder:
                total += rules.cost_wei(best[1], energy[listing_id])
        return total
