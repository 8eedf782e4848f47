"""The market service: listings, bids, auction close, deal opening, delivery and close."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from geth_private import TxRecord
from marketplace import rules
from marketplace.clock import Clock
from marketplace.deals import DealLifecycle
from marketplace.errors import (
    CannotCancel,
    DealNotActive,
    MarketError,
    NotAllowed,
    NotFound,
)
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.metering import Minting
from marketplace.store import Store
from marketplace.views import deal_view, listing_view

log = logging.getLogger(__name__)

SETTLEMENT = "settlement"  # the lease of the worker that sends the market's transactions


class Grid(Protocol):
    """What the market needs of the meter boards: switch relays, read meters."""

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a board's relay."""
        ...

    def reading(self, board_id: str) -> Any:
        """The latest reading (wh_in, wh_out, power_w; soc, pv_w on producers) or None."""
        ...

    def read(self, board_id: str) -> Any:
        """A reading asked of the board now."""
        ...

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Let a relay pass at most wh more Wh before the board opens it (None: no limit)."""
        ...

    def online(self, board_id: str) -> bool:
        """Whether the board can be reached now."""
        ...


@dataclass(frozen=True)
class Settings:
    """Tunable market behaviour."""

    limits: rules.Limits = rules.Limits()
    step_wh: int = 5  # delivery reported (and paid) every step_wh
    deal_ttl_s: int = 24 * 3600
    bid_validity_s: int = 3600  # a signed bid can open its deal this long after the deadline
    offline_grace_s: float = 10.0  # a meter offline this long pauses its deal …
    offline_close_s: float = 60.0  # … and this long ends it
    empty_soc: float = 0.01  # a seller's battery at this state of charge ends its deals
    mint_batch_wh: int = 10
    lease_s: float = 5.0  # a settling worker silent this long is replaced by another


class Market(DealLifecycle):
    """Runs auctions in the store and deals on the escrow, switching relays as deals move."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        grid: Grid,
        clock: Clock,
        hub: Hub,
        settings: Settings = Settings(),
    ):
        self.store = store
        self.ledger = ledger
        self.grid = grid
        self.clock = clock
        self.hub = hub
        self.settings = settings
        self.minting = Minting(ledger, settings.mint_batch_wh)
        self._meters: dict[str, LocalAccount] = {}  # board id -> meter key
        self._lock = threading.RLock()
        self._txs: dict[tuple[int, str], TxRecord] = {}  # (deal id, action) -> in flight
        self._retry_at: dict[int, float] = {}  # deal id -> when to send openDeal again
        self._backoff: dict[int, float] = {}
        self._expire_retry_at: dict[int, float] = {}
        self._offline_since: dict[int, float] = {}
        # Names this process among the workers sharing the store (leases, logs).
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._leading = not store.shared

    # -- participants ----------------------------------------------------------------------

    def add_participant(
        self, name: str, address: str, role: str, board_id: str | None,
        meter: LocalAccount | None,
    ) -> None:
        """Register an account with the board and meter key that measure it (none yet: None)."""
        self.store.add_participant(address, name, role, board_id, meter and meter.address)
        if board_id is None or meter is None:
            return
        self._meters[board_id] = meter
        if role == "producer":
            self.minting.add_producer(board_id, meter)

    def participant(self, address: str) -> dict[str, Any]:
        """A participant by address, or NotFound."""
        found = self.store.participant(address)
        if not found:
            raise NotFound(f"{address} is not a participant of this market")
        return found

    # -- queries ---------------------------------------------------------------------------

    def listing(self, listing_id: int) -> dict[str, Any]:
        """One listing as the pages show it."""
        row = self._listing_row(listing_id)
        return listing_view(self.store, row, self.clock.now(), self.settings.limits)

    def listings(self, status: str | None = "open") -> list[dict[str, Any]]:
        """Listings as the pages show them (open ones by default)."""
        now = self.clock.now()
        # Bids and names in one query each, not three queries per listing: every browser
        # that connects gets this snapshot (bench/portal.py, 1,000 open auctions).
        bids: dict[int, list[dict[str, Any]]] = defaultdict(list)
        sql = "SELECT b.* FROM bids b JOIN listings l ON l.id = b.listing_id"
        where = (" WHERE l.status = ?", status) if status else ("",)
        for bid in self.store.query(sql + where[0] + " ORDER BY b.id", *where[1:]):
            bids[bid["listing_id"]].append(bid)
        names = {p["address"]: p["name"] for p in self.store.participants()}
        return [
            listing_view(self.store, row, now, self.settings.limits, bids[row["id"]], names)
            for row in self.store.listings(status)
        ]

    def deal(self, deal_id: int) -> dict[str, Any]:
        """One deal as the pages show it."""
        return deal_view(self.store, self._deal_row(deal_id))

    def deals(self, address: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first; only those an address is party to when given."""
        rows = self.store.deals()
        if address:
            rows = [r for r in rows if address in (r["buyer"], r["seller"])]
        return [deal_view(self.store, r) for r in rows]

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
        if self.participant(seller.address)["role"] != "producer":
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
        buyer = self.participant(bidder.address)
        if buyer["role"] != "consumer":
            raise NotAllowed("only consumers can bid")
        if buyer["board_id"] is None:
            raise NotAllowed("no meter board measures your load yet; the operator enrolls one")
        free = self.ledger.escrow_free(bidder.address)  # a chain read: before any row lock
        with self._lock, self.store.transaction():
            # The listing's row stays locked until this bid is stored, so a bid through another
            # worker waits and then sees this one as the highest (and a close sees both).
            row = self.store.lock_listing(self._listing_row(listing_id)["id"])
            lid = row["id"]
            bids = self.store.bids(lid)
            highest = max((b["price"] for b in bids), default=None)
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
            )
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
            self.store.add_bid(
                lid, bidder.address, amount, now, bid["nonce"], bid["expiry"], signature
            )
            later = rules.extended_deadline(
                row["deadline"], row["closes_by"] or row["deadline"], now, self.settings.limits
            )
            if later != row["deadline"]:
                self.store.set_deadline(lid, later)
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
            if row["status"] != "open" or row["deadline"] <= self.clock.now():
                raise CannotCancel(f"listing {lid} has ended")
            if self.store.bids(lid):
                raise CannotCancel("a listing that has bids cannot be cancelled: bids bind")
            self.store.set_listing_status(lid, "cancelled")
        view = self.listing(lid)
        self.hub.publish("listing_closed", view)
        return view

    def close_connection(self, account: LocalAccount, deal_id: object) -> dict[str, Any]:
        """The buyer (or seller) ends a deal: relays off, last delivery paid, rest refunded."""
        with self._lock:
            row = self._deal_row(deal_id)
            did = row["id"]
            if account.address not in (row["buyer"], row["seller"]):
                raise NotAllowed("only the buyer or the seller can close this deal")
            if row["status"] != "active":
                raise DealNotActive(f"deal {did} is {row['status']}, not delivering")
            self._relays(row, on=False)
            self._report(row, self._delivered(row, fresh=True), force=True)
            try:
                record = self.ledger.close_deal_async(account, row["chain_deal_id"])
            except MarketError:
                self._relays(row, on=True)  # nothing changed on chain: keep delivering
                raise
            self._txs[(did, "close")] = record
            self.store.update_deal(did, status="closing")
        view = self.deal(did)
        self.hub.publish("deal_updated", view)
        return view

    # -- the loop --------------------------------------------------------------------------

    def tick(self) -> None:
        """One pass: close due auctions, follow deal transactions, report delivery, mint.

        Every worker closes auctions (each close is claimed in the store, so it happens once);
        only the worker holding the settlement lease sends the operator's and meters'
        transactions, so workers sharing one chain account never race for its nonces.
        """
        with self._lock:
            self._leading = self._lead()
            for row in self.store.query(
                "SELECT * FROM listings WHERE status = 'open' AND deadline <= ?", self.clock.now()
            ):
                self._close_auction(row)
            if not self._leading:
                return
            for row in self.store.query(
                "SELECT * FROM deals WHERE status IN ('opening', 'active', 'paused', 'closing')"
            ):
                try:
                    self._advance_deal(row)
                except Exception as err:  # one deal's trouble (a chain hiccup) spares the rest
                    log.warning("deal %s not advanced this tick: %s", row["id"], err)
        readings = {}
        for board_id in self._producer_boards():
            reading = self.safe_read(board_id)
            if reading is not None:
                readings[board_id] = reading.wh_in
        self.minting.step(readings)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Tick until stop is set (run as a background task)."""
        while not stop.wait(interval):
            try:
                self.tick()
            except Exception:  # one bad pass must not stop the market
                log.exception("market tick failed")
        if self.store.shared and self._leading:
            try:  # a clean stop hands settlement to another worker at once
                self.store.release_lease(SETTLEMENT, self.worker)
            except Exception as err:
                log.warning("settlement lease not released: %s", err)

    def _lead(self) -> bool:
        """Whether this worker settles deals now: always on a store of its own, else while
        it holds the settlement lease (taken over from a worker that stopped renewing it)."""
        if not self.store.shared:
            return True
        leading = self.store.hold_lease(SETTLEMENT, self.worker, self.settings.lease_s)
        if leading != self._leading:
            log.info("worker %s %s settlement", self.worker, "takes" if leading else "leaves")
        return leading

    # -- internals -------------------------------------------------------------------------

    def _listing_row(self, listing_id: object) -> dict[str, Any]:
        """A listing's stored row from an id a person gave, or InvalidInput/NotFound."""
        lid = rules.parse_int(listing_id, "listing", 1, 2**63 - 1)
        row = self.store.listing(lid)
        if not row:
            raise NotFound(f"no listing {lid}")
        return row

    def _deal_row(self, deal_id: object) -> dict[str, Any]:
        """A deal's stored row from an id a person gave, or InvalidInput/NotFound."""
        did = rules.parse_int(deal_id, "deal", 1, 2**63 - 1)
        row = self.store.deal(did)
        if not row:
            raise NotFound(f"no deal {did}")
        return row

    def _committed(self, bidder: str, except_listing: int) -> int:
        """Escrow a bidder already needs for open auctions it leads (other than one)."""
        # One query for the bids on the open listings this bidder bid on, not one per open
        # listing: a bid's cost stays flat as open auctions pile up (bench/portal.py).
        bids: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        energy: dict[int, int] = {}
        for row in self.store.query(
            "SELECT b.id, b.listing_id, b.price, b.bidder, l.energy_wh FROM bids b"
            " JOIN listings l ON l.id = b.listing_id WHERE l.status = 'open' AND l.id != ?"
            " AND EXISTS (SELECT 1 FROM bids m WHERE m.listing_id = l.id AND m.bidder = ?)"
            " ORDER BY b.id", except_listing, bidder
        ):
            bids[row["listing_id"]].append((row["id"], row["price"], row["bidder"]))
            energy[row["listing_id"]] = row["energy_wh"]
        total = 0
        for listing_id, offers in bids.items():
            best = rules.winner(offers)
            if best and best[2] == bidder:
                total += rules.cost_wei(best[1], energy[listing_id])
        return total

    def _close_auction(self, row: dict[str, Any]) -> None:
        deal_id = None
        with self.store.transaction():
            # Claimed under the row lock: a worker that saw the same deadline finds the listing
            # closed (or extended by a late bid) and leaves it.
            row = self.store.lock_listing(row["id"])
            if row["status"] != "open" or row["deadline"] > self.clock.now():
                return
            bids = self.store.bids(row["id"])
            best = rules.winner([(b["id"], b["price"], b["bidder"]) for b in bids])
            if best is None:
                self.store.set_listing_status(row["id"], "unsold")
            else:
                bid_id, price, buyer = best
                self.store.set_listing_status(row["id"], "sold", bid_id)
                expires = int(self.clock.now()) + self.settings.deal_ttl_s
                deal_id = self.store.add_deal(
                    row["id"], buyer, row["seller"], price, row["energy_wh"], expires
                )
        log.info("auction %s closed by worker %s: %s", row["id"], self.worker,
                 f"deal {deal_id}" if deal_id else "unsold")
        self.hub.publish("listing_closed", self.listing(row["id"]))
        if deal_id is None:
            return
        if self._leading:  # otherwise the settling worker's next tick sends it
            self._send_open(self.store.deal(deal_id))
        self.hub.publish("deal_updated", self.deal(deal_id))

    def _board(self, address: str) -> str:
        return self.participant(address)["board_id"]

    def _producer_boards(self) -> list[str]:
        return [p["board_id"] for p in self.store.participants() if p["role"] == "producer"]

    def safe_read(self, board_id: str, fresh: bool = False) -> Any:
        """A board reading, or None when the board cannot be read."""
        try:
            return self.grid.read(board_id) if fresh else self.grid.reading(board_id)
        except Exception as err:
            log.warning("board %s unreadable: %s", board_id, err)
            return None

