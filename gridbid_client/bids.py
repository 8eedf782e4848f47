"""A bid built from a listing's view, as the page builds it: one POST, no terms to ask for."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from eth_utils import is_address, to_checksum_address

from gridbid_client.checks import DOMAIN_TYPE, listing_offer_hash
from gridbid_client.errors import SigningRefused

# The escrow's EIP-712 domain and Bid, as the client knows them (never the portal's word for
# them): what a bid is signed in and with (contracts/bindings.py ESCROW_DOMAIN, BID_TYPES).
ESCROW_DOMAIN = ("gridbid EnergyEscrow", "1")
BID_TYPE = [("offer", "bytes32"), ("buyer", "address"), ("buyerMeter", "address"),
            ("priceWeiPerKWh", "uint256"), ("maxWh", "uint256"), ("nonce", "uint256"),
            ("expiry", "uint64")]
NO_METER = "0x" + "00" * 20  # a bidder with no meter yet: the portal refuses it in a sentence


def escrow_domain(chain_id: int, escrow: str) -> dict[str, Any]:
    """The EIP-712 domain offers and bids are signed in: this chain's escrow."""
    return {"name": ESCROW_DOMAIN[0], "version": ESCROW_DOMAIN[1], "chainId": int(chain_id),
            "verifyingContract": to_checksum_address(escrow)}


def chain_domain(chain: Mapping[str, Any]) -> dict[str, Any]:
    """The escrow's domain from a portal's /api/chain facts (chain id, contract addresses)."""
    try:
        return escrow_domain(int(chain["chain_id"]), chain["contracts"]["EnergyEscrow"])
    except (KeyError, TypeError, ValueError) as err:
        raise SigningRefused(f"the chain's facts name no escrow to bid with ({err})") from err


def build_bid(
    listing: Mapping[str, Any], price_wei: int, buyer: str, meter: str | None,
    domain: Mapping[str, Any], nonce: int | None = None,
) -> dict[str, Any]:
    """The EIP-712 bid (full typed data, uints as ints) of buyer at price_wei on a listing,
    from its view: the offer's hash recomputed from the published, seller-signed offer, the
    lot as maxWh, the least expiry the portal accepts, a fresh 63-bit nonce."""
    digest = listing_offer_hash(listing, domain)
    published = listing.get("offer_hash")
    if published is not None and str(published).lower() != "0x" + digest.hex():
        raise SigningRefused(f"listing {listing.get('id')} publishes another offer hash than "
                             "its offer's")
    try:
        expiry = int(listing["bid_expiry_min"])
    except (KeyError, TypeError, ValueError) as err:
        raise SigningRefused(f"listing {listing.get('id')} does not say which expiry a bid "
                             "needs (ask the portal for the bid's terms)") from err
    message = {
        "offer": "0x" + digest.hex(), "buyer": to_checksum_address(buyer),
        "buyerMeter": to_checksum_address(meter) if is_address(meter) else NO_METER,
        "priceWeiPerKWh": int(price_wei), "maxWh": int(listing["energy_wh"]),
        "nonce": secrets.randbits(63) if nonce is None else int(nonce), "expiry": expiry,
    }
    return {"types": {"EIP712Domain": DOMAIN_TYPE,
                      "Bid": [{"name": n, "type": t} for n, t in BID_TYPE]},
            "primaryType": "Bid", "domain": dict(domain), "message": message}


def as_json(message: Mapping[str, Any]) -> dict[str, Any]:
    """A bid's message as the portal's POST takes it: uints as decimal strings."""
    return {k: str(v) if isinstance(v, int) else v for k, v in message.items()}
