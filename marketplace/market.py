"""The market service the portal calls: it composes the auction book, the settlement and minting.

Every worker closes due auctions (each close is claimed in the store, so it happens once); only
the worker holding the settlement lease advances deals and mints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from geth_private import TxRecord
from geth_private.signed import SignedCall
from marketplace.auctions import AuctionBook
from marketplace.boards import Boards
from marketplace.bus import BusCheck
from marketplace.clock import Clock
from marketplace.errors import NotAllowed
from marketplace.events import Hub
from marketplace.intervals import IntervalMarket
from marketplace.intervals.store import INTERVALS
from marketplace.lease import SETTLEMENT, Lease
from marketplace.ledger import Ledger
from marketplace.metering import Minting
from marketplace.parties import participant, producer_boards
from marketplace.settings import Settings
from marketplace.settlement import Settlement
from marketplace.states import DealState, ListingState
from marketplace.store import Store
from marketplace.switchboard import Switchboard

__all__ = ["Market", "Settings"]

log = logging.getLogger(__name__)

DEFAULT_SETTINGS = Settings()


class Market:
    """Runs auctions in the store and deals on the escrow, switching relays as deals move."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        boards: Boards,
        clock: Clock,
        hub: Hub,
        settings: Settings = DEFAULT_SETTINGS,
    ):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.settings = settings
        self.minting = Minting(ledger, settings.mint_batch_wh)
        self.lease = Lease(store, SETTLEMENT, settings.lease_s)
        # Two locks, neither held across I/O a request would wait on: the book's (bids,
        # listings, cancels and auction closes: store work only) and the settlement pass's
        # (no request takes it). The store's row locks order them across workers.
        self._lock = threading.RLock()
        self.switchboard = Switchboard(boards, store, settings.line_loss)
        self.auctions = AuctionBook(store, ledger, clock, hub, settings, self._lock,
                                    self.lease.worker)
        self.settlement = Settlement(store, ledger, self.switchboard, clock, hub, settings,
                                     threading.RLock())
        self.on_sold: Callable[[], object] = lambda: None  # wakes the settlement loop
        self.bus = BusCheck(store, self.switchboard, clock, hub, settings, self.settlement.pause)
        self.intervals = IntervalMarket(store, ledger, self.switchboard, clock, hub, settings,
                                        self.lease)

    # -- participants ----------------------------------------------------------------------

    def add_participant(
        self, name: str, address: str, role: str, board_id: str | None,
        meter: str | None,
    ) -> None:
        """Register an account with the board and the meter (its key's address) that measure
        it (none yet: None); the meter's key stays with the board's bridge."""
        self.store.add_participant(address, name, role, board_id, meter)
        self.switchboard.forget(address)  # its cached seat is stale now
        if board_id is None or meter is None:
            return
        self.settlement.add_meter(board_id, meter)
        if role == "producer":
            self.minting.add_producer(board_id, meter)

    def learn(self, address: str) -> None:
        """Have an account's escrow and tokens read into the kept funds off the request path
        (sign-in, the market channel's join), so its first bid or listing reads none itself."""
        self.auctions.funds.learn(address)

    def participant(self, address: str) -> dict[str, Any]:
        """A participant by address, or NotFound."""
        return participant(self.store, address)

    def meter(self, board_id: str) -> str:
        """The address of the meter key a board's readings are signed with, or NotFound."""
        return self.settlement.meter(board_id)

    # -- queries ---------------------------------------------------------------------------

    def listing(self, listing_id: int) -> dict[str, Any]:
        """One listing as the pages show it."""
        return self.auctions.listing(listing_id)

    def listings(self, status: str | None = ListingState.OPEN) -> list[dict[str, Any]]:
        """Listings as the pages show them (open ones by default)."""
        return self.auctions.listings(status)

    def closed_listings(self, limit: int, viewer: str | None = None) -> list[dict[str, Any]]:
        """Auctions that are over, the latest to end first: everyone's last `limit`, and the
        viewer's own last `limit` sales and wins."""
        return self.auctions.closed_listings(limit, viewer)

    def sold_listings(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` auctions that sold, the latest to end first."""
        return self.auctions.sold_listings(limit)

    def deal(self, deal_id: int, viewer: str | None = None) -> dict[str, Any]:
        """One deal as the pages show it; given a viewer, only when it is a party (else
        NotAllowed: who trades with whom at what price is the parties' business)."""
        view = self.settlement.deal(deal_id)
        if viewer is not None and viewer not in (view["buyer"], view["seller"]):
            raise NotAllowed("only the deal's parties (and admins) can see a deal")
        return view

    def deals(self, address: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first; only those an address is party to when given."""
        return self.settlement.deals(address)

    def unlisted_wh(self, address: str) -> int:
        """Tokens an address holds that no open listing offers."""
        return self.auctions.unlisted_wh(address)

    def safe_read(self, board_id: str, fresh: bool = False) -> Any:
        """A board reading, or None when the board cannot be read."""
        return self.switchboard.read(board_id, fresh)

    # -- commands --------------------------------------------------------------------------

    def prepare_approval(self, seller: str, energy_wh: object) -> dict[str, Any]:
        """The approve(escrow, n) the seller signs before listing energy_wh, if one is needed
        (with the same allowance as a permit)."""
        return self.auctions.prepare_approval(seller, energy_wh)

    def offer_terms(
        self, seller: str, energy_wh: object, start_price: object, duration_s: object
    ) -> dict[str, Any]:
        """The EIP-712 Offer the seller signs to list energy, checked first as a listing."""
        return self.auctions.offer_terms(seller, energy_wh, start_price, duration_s)

    def create_listing(
        self, seller: str, offer: object, signature: object, approval: object = None,
        permit: object = None, energy_wh: object = None, start_price: object = None,
    ) -> dict[str, Any]:
        """List the seller's signed offer, with its approval or permit when one is needed."""
        return self.auctions.create_listing(seller, offer, signature, approval, permit,
                                            energy_wh, start_price)

    def bid_terms(self, bidder: str, listing_id: object, price: object) -> dict[str, Any]:
        """The EIP-712 bid the bidder signs, checked first as a bid would be."""
        return self.auctions.bid_terms(bidder, listing_id, price)

    def place_bid(
        self, bidder: str, listing_id: object, bid: object, signature: object
    ) -> dict[str, Any]:
        """Store a bid the bidder signed with its own key; returns once it is stored durably."""
        return self.auctions.place_bid(bidder, listing_id, bid, signature)

    def prepare_cancel(self, seller: str, listing_id: object) -> dict[str, Any]:
        """The approval (or permit) lowering the escrow's allowance that cancelling carries."""
        return self.auctions.prepare_cancel(seller, listing_id)

    def cancel_listing(
        self, seller: str, listing_id: object, approval: object = None, permit: object = None
    ) -> dict[str, Any]:
        """Withdraw a listing: only its seller, only while open and before the first bid,
        with the signed approval (or permit) that lowers the allowance by its lot."""
        return self.auctions.cancel_listing(seller, listing_id, approval, permit)

    def prepare_close(self, party: str, deal_id: object) -> dict[str, Any]:
        """The closeDeal a party signs for Close connection."""
        return self.settlement.prepare_close(party, deal_id)

    def close_connection(
        self, party: str, deal_id: object, signed_close: object = None
    ) -> dict[str, Any]:
        """The buyer (or seller) ends a deal: relays off, last delivery paid, then its close."""
        return self.settlement.close_connection(party, deal_id, signed_close)

    def submit_signed(self, call: SignedCall, label: str) -> TxRecord:
        """An owner's signed transaction, queued; a closeDeal of a deal delivering now goes
        as Close connection does: relays off and the final delivery report before it, so the
        last Wh is paid however the party sent its close (the page, a script, /rpc)."""
        called = self.ledger.function_of(call)
        if called is not None and called[:2] == ("EnergyEscrow", "closeDeal"):
            deal = self.store.deal_by_chain_id(int(called[2][0]))
            if deal is not None and deal["status"] in (DealState.ACTIVE, DealState.PAUSED) \
                    and call.sender in (deal["buyer"], deal["seller"]):
                self.settlement.close_connection(call.sender, deal["id"], call)
                return self.settlement.transactions()[(deal["id"], "close")]
        return self.ledger.submit(call, label)

    # -- the loop --------------------------------------------------------------------------

    def tick(self) -> None:
        """One pass of each job in turn: close due auctions, settle, mint (tests and tools;
        the portal runs each on its own loop: close_auctions, settle, mint)."""
        self.close_auctions()
        self.settle()
        self.mint()

    def close_auctions(self) -> None:
        """Close due auctions (every worker: each close is claimed in the store, so it
        happens once). Store work only: the new deal's openDeal goes with the settlement's
        next pass, which the sale wakes (on_sold)."""
        sold = False
        for row in self.store.due_listings(self.clock.now()):
            deal_id = self.auctions.close(row["id"])
            if deal_id is not None:
                self.settlement.begin(deal_id, send=False)
                sold = True
        if sold:
            self.on_sold()

    def settle(self) -> None:
        """The settlement's pass, on the worker holding the lease: deals' transactions,
        delivery, faults and the bus check. Only the lease holder sends the operator's
        transactions, so workers sharing one chain account never race for its nonces."""
        if not self.lease.renew():
            return
        self.settlement.advance_all()
        try:
            self.bus.step()
        except Exception as err:  # a store hiccup must not stop settlement's next pass
            log.warning("bus check skipped this tick: %s", err)

    def mint(self) -> None:
        """Mint producers' signed readings (the lease holder only: the operator sends)."""
        if not self.lease.held:
            return
        # An interval seller's readings mint with its settlement (netted there), not here.
        inside = self.intervals.istore.in_mode(INTERVALS)
        self.minting.step({board_id: self.switchboard.signed(board_id)
                           for board_id in producer_boards(self.store, exclude=inside)})

    def close(self) -> None:
        """The last tick ran: hand settlement to another worker at once (a clean stop)."""
        self.lease.release()
