"""Checks of each opened deal against the published book: signed offer and bid, floor, price,
and that the deal went to the highest bid covered at the auction's end (earliest on ties)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from contracts.bindings import bid_typed_data, offer_hash, offer_typed_data, recover_typed
from marketplace.audit.book import BookBid, BookListing
from marketplace.audit.events import Balances, Deal, cost_wei
from marketplace.audit.findings import Finding, short


def check_auctions(
    deals: Iterable[Deal], book: list[BookListing], balances: Balances, chain_id: int,
    escrow: str,
) -> list[Finding]:
    """Every deal's offer and winning bid in the book, signed, and the winner the right one;
    every bid in the book signed by its bidder for its listing's offer."""
    by_hash = {listing.hash: listing for listing in book if listing.offer is not None}
    findings = [f for listing in book for f in _book_entries(listing, chain_id, escrow)]
    for deal in deals:
        listing = by_hash.get(deal.offer)
        if listing is None:
            findings.append(Finding("auction", f"deal {deal.id}", f"its offer "
                                    f"{short(deal.offer)} is not in the published book"))
            continue
        findings += _deal(deal, listing, balances, chain_id, escrow)
    return findings


def bid_signed(bid: BookBid, chain_id: int, escrow: str) -> bool:
    """Whether the bid's buyer signed it (and it is the bidder the book names)."""
    signer = recover_typed(bid_typed_data(chain_id, escrow, bid.bid), bid.signature)
    return signer is not None and signer == bid.bid["buyer"] == bid.bidder


def _book_entries(listing: BookListing, chain_id: int, escrow: str) -> list[Finding]:
    """A listing's own consistency: offer hash and signature, each bid's signature and offer."""
    if listing.offer is None:
        return []
    where, found = f"listing {listing.id}", []
    if offer_hash(chain_id, escrow, listing.offer) != listing.hash:
        found.append(Finding("book", where, f"the offer does not hash to {short(listing.hash)}"))
    signer = recover_typed(offer_typed_data(chain_id, escrow, listing.offer), listing.signature)
    if signer != listing.offer["seller"]:
        found.append(Finding("book", where, f"the offer is not signed by its seller "
                                            f"{short(listing.offer['seller'])}"))
    for bid in listing.bids:
        subject = f"{where} bid {bid.id}"
        if not bid_signed(bid, chain_id, escrow):
            found.append(Finding("book", subject, f"not signed by {short(bid.bidder)} as "
                                 "published (altered or forged)"))
        if bid.bid["offer"] != listing.hash:
            found.append(Finding("book", subject, "names another offer than its listing's"))
        if bid.accepted_at > listing.auction_end:
            found.append(Finding("book", subject, "accepted after the auction's end"))
    return found


def _deal(
    deal: Deal, listing: BookListing, balances: Balances, chain_id: int, escrow: str
) -> list[Finding]:
    where, offer = f"deal {deal.id}", listing.offer
    assert offer is not None  # by_hash holds listings with offers only
    found = []
    if (offer["seller"], offer["sellerMeter"]) != (deal.seller, deal.sellerMeter):
        found.append(Finding("auction", where, "seller or seller's meter differ from the offer's"))
    if math.floor(listing.auction_end) > deal.opened.at:
        found.append(Finding("auction", where, f"opened at {deal.opened.at}, before the "
                                               f"auction's end {listing.auction_end:.0f}"))
    winner = next((b for b in listing.bids if b.bid["buyer"] == deal.buyer
                   and b.bid["nonce"] == deal.bidNonce), None)
    if winner is None:
        found.append(Finding("auction", where, f"its bid ({short(deal.buyer)}, nonce "
                                               f"{deal.bidNonce}) is not in the published book"))
        return found
    bid = winner.bid
    if (bid["buyerMeter"], bid["priceWeiPerKWh"]) != (deal.buyerMeter, deal.priceWeiPerKWh):
        found.append(Finding("auction", where, f"price {deal.priceWeiPerKWh} or buyer's meter "
                             f"differ from bid {winner.id}'s ({bid['priceWeiPerKWh']} wei/kWh)"))
    if deal.priceWeiPerKWh < offer["floorPriceWeiPerKWh"]:
        found.append(Finding("auction", where, f"price {deal.priceWeiPerKWh} wei/kWh is below "
                             f"the floor {offer['floorPriceWeiPerKWh']}"))
    if deal.energyWh > min(offer["energyWh"], bid["maxWh"]):
        found.append(Finding("auction", where, f"{deal.energyWh} Wh is more than offered or bid"))
    found += _passed_over(deal, listing, winner, balances, chain_id, escrow)
    return found


def _passed_over(
    deal: Deal, listing: BookListing, winner: BookBid, balances: Balances, chain_id: int,
    escrow: str,
) -> list[Finding]:
    """Bids that should have won instead: ranked above the winner (higher, or as high and
    earlier), valid, and covered both at the auction's end and when the deal opened."""
    offer = listing.offer
    assert offer is not None

    def rank(bid: BookBid) -> tuple[int, float, int]:
        return (-bid.bid["priceWeiPerKWh"], bid.accepted_at, bid.id)

    found = []
    for bid in listing.bids:
        b = bid.bid
        if rank(bid) >= rank(winner) or not bid_signed(bid, chain_id, escrow) \
                or b["offer"] != listing.hash or bid.accepted_at > listing.auction_end \
                or b["buyer"] == offer["seller"] or b["priceWeiPerKWh"] < offer[
                    "floorPriceWeiPerKWh"] or b["expiry"] < deal.opened.at:
            continue
        needed = cost_wei(b["priceWeiPerKWh"], min(offer["energyWh"], b["maxWh"]))
        at_end = balances.covering(b["buyer"], at=listing.auction_end)
        at_open = balances.covering(b["buyer"], before=deal.opened.position)
        if needed and min(at_end, at_open) >= needed:
            found.append(Finding(
                "auction", f"deal {deal.id}",
                f"went to bid {winner.id} at {winner.bid['priceWeiPerKWh']} wei/kWh, but bid "
                f"{bid.id} of {short(b['buyer'])} at {b['priceWeiPerKWh']} wei/kWh ranked higher "
                f"and was covered at the close ({at_end} wei free for {needed} needed)"))
    return found
