"""The auction book: listings and bids in the store; an auction's close makes the deal's row."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from contracts.bindings import bid_typed_data, offer_hash
from marketplace import offers, rules, signed
from marketplace.clock import Clock
from marketplace.errors import CannotCancel, InvalidInput, NotAllowed
from marketplace.events import Hub
from marketplace.funds import Funds
from marketplace.intervals.modes import check_lots
from marketplace.ledger import Ledger
from marketplace.parties import participant
from marketplace.settings import Settings
from marketplace.states import ListingState
from marketplace.store import Store
from marketplace.views import listing_order, listing_view

log = logging.getLogger(__name__)


class AuctionBook:
    """Lists energy, takes signed bids, cancels, and closes due auctions into deals.

    lock: the book's own: commands and the auction closes in this process take it for their
    store work alone (the chain's values come from Funds, kept; every send is queued with its
    hash), so nothing under it waits on a node; the store's row locks order them across
    workers.
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
        # Escrow, tokens and allowances as bids and listings check them, kept here and
        # refreshed off the request path (see Funds: how stale, and why that is safe).
        self.funds = Funds(ledger)
        # seller -> (hash, amount) of the last approval (or permit) a listing or a cancel
        # queued here: an approve sets the allowance, so it counts before it lands.
        self._approvals: dict[str, tuple[str, int]] = {}

    # -- queries ---------------------------------------------------------------------------

    def listing(self, listing_id: int) -> dict[str, Any]:
        """One listing as the pages show it."""
        row = self._listing_row(listing_id)
        return listing_view(self.store, row, self.clock.now(), self.settings.limits,
                            bid_validity_s=self.settings.bid_validity_s)

    def listings(self, status: str | None = ListingState.OPEN) -> list[dict[str, Any]]:
        """Listings as the pages show them (open ones by default, ending soonest first as
        every page draws them: views.listing_order)."""
        views = self._views(self.store.listings(status))
        if status == ListingState.OPEN:
            views.sort(key=listing_order)
        return views

    def closed_listings(self, limit: int, viewer: str | None = None) -> list[dict[str, Any]]:
        """Auctions that are over (sold, unsold, cancelled), the latest to end first: the
        last `limit` of everyone's, and the viewer's own last `limit` sales and wins among
        them even when others' pushed them out (one's fills stay in sight)."""
        rows = {row["id"]: row for row in self.store.closed_listings(limit)}
        if viewer is not None:
            rows.update((row["id"], row) for row in self.store.closed_listings(limit, viewer))
        views = self._views(list(rows.values()))
        views.sort(key=listing_order, reverse=True)
        return views

    def sold_listings(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` auctions that sold, the latest to end first."""
        return self._views(self.store.closed_listings(limit, statuses=(ListingState.SOLD,)))

    def _views(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = self.clock.now()
        # Names in one query, not two per listing: every browser that connects gets this
        # snapshot (bench/portal.py, 1,000 open auctions); each row has its highest bid.
        names = {p["address"]: p["name"] for p in self.store.participants()}
        return [listing_view(self.store, row, now, self.settings.limits, names,
                             bid_validity_s=self.settings.bid_validity_s) for row in rows]

    def unlisted_wh(self, address: str) -> int:
        """Tokens an address holds (as kept: Funds) that no open listing offers."""
        return self.funds.tokens(address)[0] - self.store.listed_wh(address)

    def _tokens_for(self, seller: str, wh: int) -> int:
        """The seller's token balance for listing wh more: as kept, or read from the chain
        once when the kept one would refuse (a mint mined a moment ago shows in the kept
        value only after the funds loop's next pass, and a refusal must not be stale)."""
        balance = self.funds.tokens(seller)[0]
        if wh > balance - self.store.listed_wh(seller):
            balance = self.funds.tokens_now(seller)[0]
        return balance

    # -- commands --------------------------------------------------------------------------

    def prepare_approval(self, seller: str, energy_wh: object) -> dict[str, Any]:
        """The seller's approve(escrow, n) to sign before listing energy_wh more, when the
        escrow's allowance does not already cover every open listing plus this one; with the
        ERC-2612 permit of the same n a page may sign instead (no Ether needed)."""
        wh = self._listing_energy(energy_wh)
        needed = self.store.listed_wh(seller) + wh
        label = "Approve tokens for sale"
        if self._allowance(seller) >= needed:
            return {"needed": False, "label": label}
        tx = self.ledger.user_tx("EnergyToken", "approve", [self.ledger.escrow.address, needed])
        return {**signed.prepared(self.ledger.prepare(seller, tx, label), label),
                "value": str(needed), "permit": offers.permit_terms(self.ledger, seller, needed)}

    def offer_terms(
        self, seller: str, energy_wh: object, start_price: object, duration_s: object
    ) -> dict[str, Any]:
        """The EIP-712 Offer the seller signs to list energy_wh from start_price (its floor)
        for duration_s, checked as a listing would be first."""
        limits = self.settings.limits
        check_lots(self.store, seller)
        wh = self._listing_energy(energy_wh)
        price = rules.parse_int(start_price, "start bid (wei per kWh)", 1, rules.MAX_WEI)
        duration = rules.parse_int(
            duration_s, "duration (s)", limits.min_duration_s, limits.max_duration_s
        )
        meter = offers.seller_meter(participant(self.store, seller))
        rules.check_cost(price, wh, "start bid")
        rules.check_listing(wh, self._tokens_for(seller, wh) - self.store.listed_wh(seller))
        deadline = offers.offer_deadline(self.clock.now() + duration, self.settings)
        offer = offers.new_offer(seller, meter, wh, price, deadline)
        return offers.offer_terms_json(self.ledger, offer)

    def create_listing(
        self, seller: str, offer: object, signature: object, approval: object = None,
        permit: object = None, energy_wh: object = None, start_price: object = None,
    ) -> dict[str, Any]:
        """List the seller's signed Offer for auction (it ends when the offer's deadline
        leaves the soft-close cap and the bid validity); approval (a signed approve) or permit
        raises the escrow's allowance when it falls short (queued here, not awaited)."""
        check_lots(self.store, seller)
        terms = signed.parse_offer(offer)
        sig = signed.signature_bytes(signature)
        domain = self.ledger.offer_domain()
        if signed.offer_signer(*domain, terms, sig) != seller:
            raise NotAllowed("the offer is not signed by your key")
        asked = {"energy_wh": None if energy_wh is None else self._listing_energy(energy_wh),
                 "start_price": None if start_price is None else rules.parse_int(
                     start_price, "start bid (wei per kWh)", 1, rules.MAX_WEI)}
        meter = offers.seller_meter(participant(self.store, seller))
        offers.check_offer(terms, seller, meter, self.settings, self.clock.now(), asked)
        digest = offer_hash(*domain, terms)
        if self.store.listing_by_offer(digest) or self.funds.offer_used(digest):
            raise InvalidInput("this signed offer was already listed; sign a new one")
        allowance = self._allowance(seller)  # kept values (Funds): no chain read
        backing = offers.backing(approval, permit, seller, self.ledger)
        wh = terms["energyWh"]
        balance = self._tokens_for(seller, wh)  # read outside the lock; checked under it
        with self._lock:
            rules.check_listing(wh, balance - self.store.listed_wh(seller))
            needed = self.store.listed_wh(seller) + wh
            if backing is None and allowance < needed:
                raise InvalidInput(f"sign the escrow's approval (or permit) of {needed} Wh first"
                                   " (POST /api/tx/prepare with action approve)")
            if backing is not None and backing.amount < needed:
                raise InvalidInput(f"the approval covers {backing.amount} Wh; listing needs "
                                   f"{needed}")
            approval_tx = backing and backing.submit(self.ledger, seller,
                                                     "Approve tokens for sale")
            if backing is not None:
                self._approvals[seller] = (approval_tx, backing.amount)
            end = offers.auction_end(terms, self.settings)
            listing_id = self.store.add_listing(
                seller, wh, terms["floorPriceWeiPerKWh"], self.clock.now(), end,
                closes_by=end + self.settings.limits.soft_close_cap_s, approval_tx=approval_tx,
                offer=terms, offer_signature=sig, offer_hash=digest,
            )
        view = self.listing(listing_id)
        self.hub.publish("listing_created", view)
        return view

    def bid_terms(self, bidder: str, listing_id: object, price: object) -> dict[str, Any]:
        """The EIP-712 bid the bidder signs for this price, checked as a bid would be first:
        it names the listing's offer (hash) and the bidder's meter. Optional: the listing's
        view carries all a bidder needs to build the same bid itself (the page does)."""
        amount = rules.parse_int(price, "bid (wei per kWh)", 1, rules.MAX_WEI)
        row = self._listing_row(listing_id)
        buyer = participant(self.store, bidder)
        self._check_bid(buyer, row, amount, self.funds.of(bidder))
        bid = {
            "offer": self._offer_hash(row), "buyer": bidder,
            "buyerMeter": buyer["meter_address"],
            "priceWeiPerKWh": amount, "maxWh": row["energy_wh"],
            "nonce": secrets.randbits(63), "expiry": self._bid_expiry(row)[0],
        }
        return signed.page_terms(bid_typed_data(*self.ledger.bid_domain(), bid))

    def place_bid(
        self, bidder: str, listing_id: object, bid: object, signature: object
    ) -> dict[str, Any]:
        """Store a bid the bidder signed (EIP-712) once it is checked; returns when durable."""
        terms = signed.parse_bid(bid)
        sig = signed.signature_bytes(signature)
        row = self._listing_row(listing_id)
        if signed.bid_signer(*self.ledger.bid_domain(), terms, sig) != bidder:
            raise NotAllowed("the bid is not signed by your key")
        buyer = participant(self.store, bidder)
        # Who may bid first: a bid built without terms (no pre-check) gets this sentence, not
        # "does not match" for a meter it could not name.
        self._check_bidder(buyer)
        wrong = [name for name, want in (("offer", self._offer_hash(row)), ("buyer", bidder),
                                         ("buyerMeter", buyer["meter_address"]),
                                         ("maxWh", row["energy_wh"]))
                 if terms[name] != want]
        if wrong:
            raise InvalidInput(f"the signed bid does not match this listing: {', '.join(wrong)}")
        least, most = self._bid_expiry(row)
        if not least <= terms["expiry"] <= most:
            raise InvalidInput("the bid's expiry must let its deal open after the auction ends "
                               f"and be at most a week later (between {least} and {most}: "
                               "the listing's bid_expiry_min and bid_expiry_max)")
        if self.store.bid_nonce_used(bidder, terms["nonce"]):
            raise InvalidInput("this signed bid was already placed; sign a new one")
        amount = terms["priceWeiPerKWh"]
        funds = self.funds.of(bidder)  # kept (Funds): read before the lock all the same
        with self._lock, self.store.transaction():
            # The listing's row stays locked until this bid is stored, so a bid through another
            # worker waits and then sees this one as the highest (and a close sees both).
            row = self.store.lock_listing(row["id"])
            self._check_bid(buyer, row, amount, funds)
            self._store_bid(bidder, row, terms, sig)
        view = self.listing(row["id"])
        self.hub.publish("bid_placed", view)
        return view

    def prepare_cancel(self, seller: str, listing_id: object) -> dict[str, Any]:
        """The approve(escrow, allowance − lot) (and the same as a permit) the seller signs to
        cancel a listing: a cancelled lot leaves no allowance behind."""
        row = self._cancellable(seller, listing_id)
        allowance = self._allowance(seller)
        value = max(allowance - row["energy_wh"], 0)
        label = "Lower the token approval"
        if allowance <= value:
            return {"needed": False, "label": label, "value": str(value)}
        tx = self.ledger.user_tx("EnergyToken", "approve", [self.ledger.escrow.address, value])
        return {**signed.prepared(self.ledger.prepare(seller, tx, label), label),
                "value": str(value), "permit": offers.permit_terms(self.ledger, seller, value)}

    def cancel_listing(
        self, seller: str, listing_id: object, approval: object = None, permit: object = None
    ) -> dict[str, Any]:
        """Withdraw a listing: only its seller, only while open and before the first bid;
        approval (or permit) lowers the escrow's allowance by the lot (see prepare_cancel)."""
        row = self._cancellable(seller, listing_id)
        allowance = self._allowance(seller)  # kept (Funds)
        lowered = offers.backing(approval, permit, seller, self.ledger)
        ceiling = max(allowance - row["energy_wh"], 0)
        if lowered is None and allowance > ceiling:
            raise InvalidInput(f"sign the approval that lowers the escrow's allowance to "
                               f"{ceiling} Wh (POST /api/tx/prepare with action cancel_listing)")
        with self._lock, self.store.transaction():
            # Locked like a bid and a close: a bid through another worker lands before or not.
            row = self.store.lock_listing(row["id"])
            lid = row["id"]
            self._check_cancel(seller, row)
            if lowered is not None:
                others = min(self.store.listed_wh(seller) - row["energy_wh"], ceiling)
                if not others <= lowered.amount <= ceiling:
                    raise InvalidInput(f"the approval must leave between {others} Wh (your other"
                                       f" listings) and {ceiling} Wh, not {lowered.amount}")
            self.store.set_listing_status(lid, ListingState.CANCELLED)
            if lowered is not None:
                self._approvals[seller] = (
                    lowered.submit(self.ledger, seller, "Lower the token approval"),
                    lowered.amount)
        view = self.listing(lid)
        self.hub.publish("listing_closed", view)
        return view

    def close(self, listing_id: int) -> int | None:
        """Close an auction whose deadline came: sold (the new deal's id) or unsold (None)."""
        deal_id = None
        with self._lock, self.store.transaction():
            # Claimed under the row lock: a worker that saw the same deadline finds the listing
            # closed (or extended by a late bid) and leaves it.
            row = self.store.lock_listing(listing_id)
            if row["status"] != ListingState.OPEN or row["deadline"] > self.clock.now():
                return None
            # The highest bid as every bid kept it (Store.add_bid: rules.winner's order).
            best = None if row["leader_bid"] is None else (
                row["leader_bid"], row["leader_price"], row["leader_bidder"])
            if best is None:
                self.store.set_listing_status(row["id"], ListingState.UNSOLD)
            else:
                bid_id, price, buyer = best
                self.store.set_listing_status(row["id"], ListingState.SOLD, bid_id)
                # No expiry yet: the escrow fixes it when the deal opens (read back then).
                deal_id = self.store.add_deal(
                    row["id"], buyer, row["seller"], price, row["energy_wh"]
                )
        log.info("auction %s closed by worker %s: %s", row["id"], self.worker,
                 f"deal {deal_id}" if deal_id else "unsold")
        self.hub.publish("listing_closed", self.listing(row["id"]))
        return deal_id

    # -- internals -------------------------------------------------------------------------

    def _check_bid(
        self, buyer: dict[str, Any], row: dict[str, Any], amount: int, funds: tuple[int, int]
    ) -> None:
        """The auction rules for this bid (role, increment, deadline, escrow that covers it);
        buyer: the bidder's participant row; funds: its (free escrow, withdrawing) as
        Funds.of read them. Constant in the number of bids: the row keeps its highest bid."""
        bidder = buyer["address"]
        check_lots(self.store, bidder)
        self._check_bidder(buyer)
        rules.check_bid(
            seller=row["seller"], bidder=bidder, start_price=row["start_price"],
            highest=row["leader_price"], price=amount, energy_wh=row["energy_wh"],
            deadline=row["deadline"], now=self.clock.now(), status=row["status"],
            free_wei=funds[0] - self._committed(bidder, row["id"]),
            limits=self.settings.limits,
            # A pending request may complete before this bid's deal opens: it covers no bid.
            withdrawing_wei=funds[1],
        )

    @staticmethod
    def _check_bidder(buyer: dict[str, Any]) -> None:
        """Only a consumer whose load a meter board measures bids."""
        if buyer["role"] != "consumer":
            raise NotAllowed("only consumers can bid")
        if buyer["board_id"] is None or buyer["meter_address"] is None:
            raise NotAllowed("no meter board measures your load yet; the operator enrolls one")

    def _store_bid(
        self, bidder: str, row: dict[str, Any], bid: dict[str, Any], signature: bytes
    ) -> None:
        """Store the bidder's own signed bid and extend a soft-closing deadline."""
        lid = row["id"]
        now = self.clock.now()
        # row: as lock_listing read it in this transaction (place_bid), so add_bid need not.
        self.store.add_bid(lid, bidder, bid["priceWeiPerKWh"], now, bid["nonce"], bid["expiry"],
                           signature, bid["buyerMeter"], locked=row)
        later = rules.extended_deadline(
            row["deadline"], row["closes_by"] or row["deadline"], now, self.settings.limits
        )
        if later != row["deadline"]:
            self.store.set_deadline(lid, later)

    def _bid_expiry(self, row: dict[str, Any]) -> tuple[int, int]:
        """(least, greatest) expiry a bid on this listing may carry (rules.bid_expiry_bounds),
        as its view publishes them."""
        return rules.bid_expiry_bounds(row.get("closes_by"), row["deadline"],
                                       self.settings.bid_validity_s)

    def _allowance(self, seller: str) -> int:
        """The escrow's token allowance from seller as it stands once the last approval (or
        permit) queued here lands: a cancel's lowering one in flight already counts, so a
        listing prepared meanwhile is not told the old allowance covers it (the chain's as
        Funds keeps it)."""
        on_chain = self.funds.tokens(seller)[1]
        queued = self._approvals.get(seller)
        if queued is not None and not offers.approval_settled(self.store, self.ledger, queued[0]):
            return queued[1]
        return on_chain

    def _listing_energy(self, energy_wh: object) -> int:
        limits = self.settings.limits
        return rules.parse_int(energy_wh, "energy (Wh)", limits.min_energy_wh,
                               limits.max_energy_wh)

    def _offer_hash(self, row: dict[str, Any]) -> bytes:
        """A listing's offer hash (what its bids name), or InvalidInput for an unsigned one."""
        if not row.get("offer_hash"):
            raise InvalidInput(f"listing {row['id']} has no signed offer (listed before offers "
                               "were signed): it takes no bids")
        return bytes.fromhex(row["offer_hash"][2:])

    def _cancellable(self, seller: str, listing_id: object) -> dict[str, Any]:
        """A listing its seller may cancel now, or NotAllowed/CannotCancel."""
        row = self._listing_row(listing_id)
        self._check_cancel(seller, row)
        if not offers.approval_settled(self.store, self.ledger, row["approval_tx"]):
            # Its approval (or permit) would land after the lowering one and raise it again.
            raise CannotCancel(f"listing {row['id']}'s token approval is not mined yet: "
                               "cancel it in a moment")
        return row

    def _check_cancel(self, seller: str, row: dict[str, Any]) -> None:
        lid = row["id"]
        if row["seller"] != seller:
            raise NotAllowed("only the seller can cancel a listing")
        if row["status"] != ListingState.OPEN or row["deadline"] <= self.clock.now():
            raise CannotCancel(f"listing {lid} has ended")
        if row["bid_count"]:
            raise CannotCancel("a listing that has bids cannot be cancelled: bids bind")

    def _listing_row(self, listing_id: object) -> dict[str, Any]:
        """A listing's stored row from an id a person gave, or InvalidInput/NotFound."""
        return rules.stored(self.store.listing, listing_id, "listing")

    def _committed(self, bidder: str, except_listing: int) -> int:
        """Escrow a bidder already needs for open auctions it leads (other than one), and for
        sold ones whose deal is not open yet (it will still take their Ether)."""
        return sum(rules.cost_wei(r["price"], r["energy_wh"])
                   for r in self.store.committed(bidder, except_listing))
