"""A listing is the seller's signed offer (F3), and the F8 market refusals around it: lots that
cost 0 wei, cancels that left the allowance behind, old escrow deals a new store adopted."""

from __future__ import annotations

import pytest

from contracts.bindings import offer_hash, sign_offer
from marketplace.errors import InvalidInput, NotAllowed
from marketplace.states import DealState
from tests.common import wait_for
from tests.marketplace.common import ready


@pytest.fixture
def people(runtime):
    return ready(runtime, wh=60)


def _deal(market, listing_id):
    return next((d for d in market.deals() if d["listing_id"] == listing_id), None)


def _opened(market, listing_id):
    """The deal once the escrow opened it (activation, by both meters' readings, may follow)."""
    return wait_for(lambda: (d := _deal(market, listing_id)) and d["chain_deal_id"] and d,
                    timeout=30, what="the deal to open on chain")


def _list_with(runtime, party, offer, signature, **asked):
    """create_listing with this offer and the approval the lot needs."""
    market = runtime.market
    prepared = market.prepare_approval(party.address, offer["energyWh"])
    approval = party.sign(prepared) if prepared["needed"] else None
    return market.create_listing(party.address, offer, signature, approval, None, **asked)


def test_the_deal_opens_from_the_sellers_own_signed_offer(runtime, people, clock):
    """F3: the operator opened deals against a seller's standing approval, the seller having
    signed nothing; now the escrow's deal names the hash of the offer the seller signed."""
    market, ledger = runtime.market, runtime.ledger
    listing = people["alice"].list(10, 1000, 30)
    stored = runtime.store.listing(listing["id"])
    assert listing["offer"]["seller"] == people["alice"].address
    assert listing["offer_hash"] == stored["offer_hash"]
    people["bob"].bid(listing["id"], 2000)
    clock.advance(31)
    deal = _opened(market, listing["id"])
    chain = ledger.chain_deal(deal["chain_deal_id"])
    assert "0x" + bytes(chain["offer"]).hex() == listing["offer_hash"]
    assert ledger.deal_of_offer(bytes.fromhex(listing["offer_hash"][2:])) == deal["chain_deal_id"]
    assert chain["sellerMeter"] == listing["offer"]["sellerMeter"]
    # The expiry is the escrow's (dealDuration from the open), read back from the chain.
    assert deal["expires_at"] == chain["expiresAt"]


def test_an_offer_not_signed_by_the_seller_or_not_the_listings_terms_lists_nothing(
        runtime, people):
    """F3: a listing is only what its seller signed: another key's offer, a meter other than
    the seller's, terms other than the ones asked, or an offer listed twice are refused."""
    alice, bob = people["alice"], people["bob"]
    offer, signature = alice.offer(10, 1000, 30)
    domain = runtime.ledger.offer_domain()
    forged = sign_offer(bob.account, *domain, {k: int(v) if k not in (
        "seller", "sellerMeter") else v for k, v in offer.items()})
    with pytest.raises(NotAllowed, match="not signed by your key"):
        _list_with(runtime, alice, offer, "0x" + forged.hex())
    other_meter = {**offer, "sellerMeter": bob.address}
    typed = {k: int(v) if k not in ("seller", "sellerMeter") else v
             for k, v in other_meter.items()}
    resigned = "0x" + sign_offer(alice.account, *domain, typed).hex()
    with pytest.raises(InvalidInput, match="sellerMeter"):
        _list_with(runtime, alice, other_meter, resigned)
    with pytest.raises(InvalidInput, match="energyWh"):
        _list_with(runtime, alice, offer, signature, energy_wh=11)
    listed = _list_with(runtime, alice, offer, signature, energy_wh=10, start_price=1000)
    assert listed["offer_hash"] == "0x" + offer_hash(*domain, typed | {
        "sellerMeter": offer["sellerMeter"]}).hex()
    with pytest.raises(InvalidInput, match="already listed"):
        _list_with(runtime, alice, offer, signature)
    assert [row["id"] for row in runtime.store.listings()] == [listed["id"]]


def test_a_lot_that_costs_0_wei_is_refused_at_listing(runtime, people):
    """F8: 1 Wh at 999 wei/kWh opened a deal with 0 wei locked and burnt the token for
    nothing; such a listing, and such a bid, are refused with the least price that pays."""
    with pytest.raises(InvalidInput, match=r"costs nothing.*at least 0\.000000000000001 ETH/kWh"):
        people["alice"].list(1, 999, 30)
    assert runtime.store.listings() == []
    # The bid's side of it (a listing's start price already passes): tests/marketplace/test_rules.


def test_cancelling_a_listing_lowers_the_escrows_allowance_by_its_lot(runtime, people):
    """F8: a cancelled listing left its approval behind, so the escrow could still take the
    lot; the cancel now carries the seller's approve(escrow, allowance − lot)."""
    ledger, alice = runtime.ledger, people["alice"]
    kept = alice.list(10, 1000, 30)
    cancelled = alice.list(15, 1000, 30)
    ledger.wait(runtime.txm.record(runtime.store.listing(cancelled["id"])["approval_tx"]))
    before = ledger.allowance(alice.address)
    assert before >= 25
    with pytest.raises(InvalidInput, match="lowers the escrow's allowance"):
        runtime.market.cancel_listing(alice.address, cancelled["id"])  # nothing signed
    alice.cancel(cancelled["id"])
    lowered = wait_for(lambda: ledger.allowance(alice.address) < before and
                       ledger.allowance(alice.address), what="the lowered allowance")
    assert lowered == before - 15
    assert lowered >= kept["energy_wh"]  # the other listing stays covered


def test_a_new_store_on_a_chain_that_remembers_opens_its_own_deal(runtime, people, clock):
    """F8: a new store (listing ids restart) adopted the escrow's old deal of "its" listing 1
    without comparing buyer, seller and price; deals are now found by the offer they opened."""
    market, ledger, store = runtime.market, runtime.ledger, runtime.store
    first = people["alice"].list(10, 1000, 30)
    people["carol"].bid(first["id"], 3000)
    clock.advance(31)
    old = _opened(market, first["id"])
    # The new store: the same seats on the same chain, no listings, bids or deals, ids from 1.
    with store.transaction():
        for table in ("deals", "bids", "listings"):
            store.write(f"DELETE FROM {table}")
    market.settlement._txs.clear()  # and a new process: it follows no transaction yet
    again = people["alice"].list(10, 1000, 30)
    assert again["id"] == first["id"]
    people["bob"].bid(again["id"], 2000)
    clock.advance(31)
    new = _opened(market, again["id"])
    assert new["chain_deal_id"] != old["chain_deal_id"]
    chain = ledger.chain_deal(new["chain_deal_id"])
    assert (chain["buyer"], chain["priceWeiPerKWh"]) == (people["bob"].address, 2000)


def test_an_escrow_deal_whose_parties_or_price_differ_is_not_adopted(runtime, people, clock):
    """F8: the escrow's deal for a listing's offer is taken only when buyer, seller, price and
    energy agree with the stored deal; otherwise the deal fails with the difference."""
    market, store = runtime.market, runtime.store
    listing = people["alice"].list(10, 1000, 30)
    people["carol"].bid(listing["id"], 3000)
    clock.advance(31)
    deal = _opened(market, listing["id"])
    # The store forgot the chain deal and remembers another buyer at another price. Under the
    # settlement pass's lock, as the pass works: a pass already under way must not write the
    # row it read before this change back over the failure.
    with market.settlement.lock:
        market.settlement._txs.clear()
        store.update_deal(deal["id"], chain_deal_id=None, expires_at=None,
                          status=DealState.OPENING, buyer=people["bob"].address, price=4000)
        market.settlement.advance_all()
    failed = market.deal(deal["id"])
    assert failed["status"] == DealState.FAILED
    assert f"the escrow's deal {deal['chain_deal_id']} for this offer is not this deal" \
        in failed["error"]
    assert "buyer" in failed["error"] and "price 3000 ≠ 4000" in failed["error"]
