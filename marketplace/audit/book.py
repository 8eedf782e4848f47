"""The published bid book: every listing's signed offer and every accepted signed bid.

GET /api/book serves it (web/book.py builds the pages with `listing_entry`); `parse_book`
reads it back on the auditor's side, typed, refusing what is malformed with BookError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from contracts.bindings import BID_TYPES, OFFER_TYPES


class BookError(ValueError):
    """The book (or one entry of it) is not in the published format."""


@dataclass(frozen=True)
class BookBid:
    """One accepted bid as the buyer signed it, and when the portal accepted it."""

    id: int
    bidder: str
    bid: dict[str, Any]  # the EIP-712 Bid, typed (bytes32 as bytes, uints as ints)
    signature: bytes
    accepted_at: float


@dataclass(frozen=True)
class BookListing:
    """One listing: the seller's signed offer, its hash, the auction's end and its bids."""

    id: int
    offer: dict[str, Any] | None  # the EIP-712 Offer, typed; None for a pre-offer listing
    signature: bytes
    hash: bytes
    auction_end: float
    status: str
    bids: tuple[BookBid, ...]


def _as_json(message: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, int) else "0x" + v.hex() if isinstance(v, bytes) else v
            for k, v in message.items()}


def listing_entry(
    listing: Mapping[str, Any], bids: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """A store listing row (offer JSON, signature, hash) and its bid rows as the book serves
    them: each bid rebuilt as its buyer signed it (the offer's hash, the lot's Wh as maxWh)."""
    offer = json.loads(listing["offer"]) if listing.get("offer") else None
    return {
        "id": listing["id"], "offer": offer, "signature": listing.get("offer_signature"),
        "hash": listing.get("offer_hash"), "auction_end": listing["deadline"],
        "status": listing["status"],
        "bids": [{
            "id": bid["id"], "bidder": bid["bidder"], "accepted_at": bid["created"],
            "signature": bid["signature"],
            "bid": _as_json({
                "offer": listing.get("offer_hash"), "buyer": bid["bidder"],
                "buyerMeter": bid.get("buyer_meter"), "priceWeiPerKWh": int(bid["price"]),
                "maxWh": listing["energy_wh"], "nonce": int(bid["nonce"]),
                "expiry": int(bid["expiry"]),
            }),
        } for bid in bids],
    }


def _typed(message: object, fields: list[dict[str, str]], what: str) -> dict[str, Any]:
    """An EIP-712 message from JSON: addresses checksummed, uints int, bytes32 bytes."""
    if not isinstance(message, Mapping):
        raise BookError(f"{what} is not an object")
    typed: dict[str, Any] = {}
    for item in fields:
        name, kind, value = item["name"], item["type"], message.get(item["name"])
        try:
            if kind == "address":
                if not isinstance(value, str) or not is_hex_address(value):
                    raise ValueError(value)
                typed[name] = to_checksum_address(value)
            elif kind == "bytes32":
                typed[name] = _hex_bytes(value, 32)
            else:
                number = int(value) if isinstance(value, int | str) else None
                if isinstance(value, bool) or number is None or not 0 <= number < 2 ** int(
                        kind.removeprefix("uint")):
                    raise ValueError(value)
                typed[name] = number
        except (ValueError, TypeError) as err:
            raise BookError(f"{what}: {name} {value!r} is not of type {kind}") from err
    return typed


def _hex_bytes(value: object, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(value)
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise ValueError(value)
    return raw


def _bid(entry: object, where: str) -> BookBid:
    if not isinstance(entry, Mapping):
        raise BookError(f"{where} is not an object")
    try:
        signature = _hex_bytes(entry.get("signature"))
        accepted_at = float(entry["accepted_at"])
        bidder = to_checksum_address(entry["bidder"])
        return BookBid(int(entry["id"]), bidder, _typed(entry.get("bid"), BID_TYPES["Bid"],
                       where), signature, accepted_at)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, BookError):
            raise
        raise BookError(f"{where}: {err!r} is missing or malformed") from err


def _listing(entry: object) -> BookListing:
    if not isinstance(entry, Mapping):
        raise BookError("a listing is not an object")
    where = f"listing {entry.get('id')!r}"
    try:
        offer = entry.get("offer")
        listing_id = int(entry["id"])
        return BookListing(
            listing_id,
            None if offer is None else _typed(offer, OFFER_TYPES["Offer"], f"{where} offer"),
            _hex_bytes(entry.get("signature") or "0x"), _hex_bytes(entry.get("hash") or "0x"),
            float(entry["auction_end"]), str(entry.get("status", "")),
            # A listing from before signed offers has bids for another escrow: none to check.
            () if offer is None else tuple(
                _bid(b, f"{where} bid {i}") for i, b in enumerate(entry.get("bids") or [])),
        )
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, BookError):
            raise
        raise BookError(f"{where}: {err!r} is missing or malformed") from err


def parse_book(pages: list[Mapping[str, Any]]) -> list[BookListing]:
    """Every listing of the book's pages (GET /api/book answers, or one saved file)."""
    listings: dict[int, BookListing] = {}
    for page in pages:
        if not isinstance(page, Mapping) or not isinstance(page.get("listings"), list):
            raise BookError('a book page is an object with a "listings" list')
        for entry in page["listings"]:
            listing = _listing(entry)
            if listing.id in listings:
                raise BookError(f"listing {listing.id} appears twice in the book")
            listings[listing.id] = listing
    return [listings[i] for i in sorted(listings)]
