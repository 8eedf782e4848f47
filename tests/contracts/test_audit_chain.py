"""The audit on the contracts' own events and calls (py-evm): `gridbid verify`'s chain reader
decodes what the token and escrow emit and were sent, and the checks agree with an honest
auction and catch a covered higher bid passed over."""

from __future__ import annotations

import json

from contracts.bindings import offer_hash
from marketplace.audit.book import listing_entry, parse_book
from marketplace.audit.chain import ChainReader
from marketplace.audit.report import audit, txs_to_decode

from .common import DEPOSIT, ENERGY, LOTS, PRICE


def _book(chain, offer, offer_sig, bids, end):
    """The book the portal would publish for one listing: its store rows through listing_entry."""
    digest = offer_hash(chain.chain_id, chain.escrow.address, offer)
    row = {"id": 1, "offer": json.dumps({k: str(v) for k, v in offer.items()}),
           "offer_signature": "0x" + offer_sig.hex(), "offer_hash": "0x" + digest.hex(),
           "deadline": end, "status": "sold", "energy_wh": offer["energyWh"]}
    rows = [{"id": i, "bidder": bid["buyer"], "created": end - 10 + i, "price": bid[
        "priceWeiPerKWh"], "nonce": bid["nonce"], "expiry": bid["expiry"], "signature": "0x"
        + sig.hex(), "buyer_meter": bid["buyerMeter"]} for i, (bid, sig) in enumerate(bids, 1)]
    return parse_book([{"listings": [listing_entry(row, rows)]}])


def _auction(chain, rival_deposits: bool):
    """buyer bids PRICE, the stranger bids more; the operator opens buyer's deal and 500 Wh
    are delivered. The audit's findings."""
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    offer, offer_sig = chain.signed_offer()
    ours = chain.signed_bid(offer)
    rival = chain.signed_bid(offer, price=2 * PRICE, buyer=chain.stranger, nonce=2)
    if rival_deposits:
        chain.send(chain.escrow.functions.deposit(LOTS), chain.stranger, value=DEPOSIT)
    end = chain.now()
    chain.send(chain.open_with((offer, offer_sig), ours), chain.admin)
    chain.deliver(1, 500)
    reader = ChainReader(chain.w3, chain.token.address, chain.escrow.address)
    events = reader.events()
    report = audit(events, reader.calls(txs_to_decode(events)),
                   _book(chain, offer, offer_sig, [ours, rival], end), reader.chain_id(),
                   chain.token.address, chain.escrow.address)
    return report


def test_an_honest_auction_mint_and_delivery_agree(enrolled):
    report = _auction(enrolled, rival_deposits=False)  # the higher bid was never covered
    assert report.findings == ()
    assert (report.auctions, report.mints, report.deliveries) == (1, 1, 1)
    assert report.summary() == "1 auctions, 1 mints, 1 deliveries agree"


def test_a_covered_higher_bid_passed_over_is_found(enrolled):
    report = _auction(enrolled, rival_deposits=True)
    [finding] = report.findings
    assert finding.kind == "auction" and "went to bid 1" in finding.message
    assert "bid 2 of" in finding.message and "covered at the close" in finding.message
