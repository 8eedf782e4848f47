"""The market on a real embedded chain and emulated boards, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from marketplace.errors import AuctionClosed, InsufficientEscrow, InsufficientTokens, NotAllowed
from marketplace.ledger import LOTS
from marketplace.store import Store
from tests.common import wait_for
from tests.marketplace.common import ready

ETH = 10**18


@pytest.fixture
def people(runtime):
    return ready(runtime, wh=100)


def test_unsold_listing_closes_without_a_deal(runtime, people, clock):
    market = runtime.market
    listing = people["alice"].list(10, 1000, 30)
    clock.advance(30)
    wait_for(lambda: market.listing(listing["id"])["status"] == "unsold", what="unsold")
    assert market.deals() == []


def test_highest_bid_wins_equal_and_late_bids_are_refused(runtime, people, clock):
    market = runtime.market
    listing = people["alice"].list(10, 1000, 30)
    people["carol"].bid(listing["id"], 5000)
    with pytest.raises(Exception, match=r"at least 0\.00000000000000505 ETH/kWh"):  # 1 % over 5000
        people["bob"].bid(listing["id"], 5000)
    clock.advance(30)
    with pytest.raises(AuctionClosed):
        people["bob"].bid(listing["id"], 9000)
    deal = wait_for(lambda: market.deals(), what="a deal")[0]
    assert deal["buyer"] == people["carol"].address


def test_refusals_for_tokens_escrow_and_roles(runtime, people):
    market = runtime.market
    alice, bob = people["alice"], people["bob"]
    unlisted = market.unlisted_wh(alice.address)
    with pytest.raises(InsufficientTokens):
        alice.list(unlisted + 1_000, 1000, 30)
    with pytest.raises(NotAllowed, match="only producers"):
        bob.list(1, 1000, 30)
    listing = alice.list(10, 1000, 30)
    with pytest.raises(InsufficientEscrow, match="deposit more"):
        bob.bid(listing["id"], 2 * 10**19)  # 0.2 ETH of 0.1
    # A bid that fits the escrow only if bob's other leading bids are ignored is refused.
    bob.bid(listing["id"], 9 * 10**18)  # 10 Wh -> 0.09 ETH of 0.1
    second = alice.list(10, 1000, 30)
    with pytest.raises(InsufficientEscrow):
        bob.bid(second["id"], 2 * 10**18)  # another 0.02 ETH


def test_an_acknowledged_bid_is_on_disk(runtime, people):
    listing = people["alice"].list(10, 1000, 30)
    people["bob"].bid(listing["id"], 1234)
    other = Store(runtime.store.path)  # a second connection sees only what was committed
    assert [b["price"] for b in other.bids(listing["id"])] == [1234]
    other.close()


def test_transactions_and_receipts_are_kept_in_the_store(runtime, people):
    bob = people["bob"].address
    kept = runtime.store.transactions(bob)
    assert kept[0]["label"] == "Deposit into escrow" and kept[0]["status"] == "mined"
    assert kept[0]["block"] > 0 and kept[0]["gas_used"] > 21_000


def test_a_late_bid_extends_the_auction_and_everyone_sees_it(runtime, people, clock):
    market = runtime.market
    seen = []
    runtime.hub.subscribe(lambda topic, payload: seen.append((topic, payload)))
    listing = people["alice"].list(10, 1000, 30)
    deadline = listing["deadline"]
    clock.advance(25)  # 5 s left: inside the 10 s soft close
    after = people["bob"].bid(listing["id"], 1000)
    assert after["deadline"] == deadline + 10
    assert [p["deadline"] for t, p in seen if t == "bid_placed"] == [deadline + 10]
    clock.advance(9)  # past the first deadline, before the new one: still open
    assert market.listing(listing["id"])["status"] == "open"
    people["carol"].bid(listing["id"], 2000)
    assert market.listing(listing["id"])["deadline"] == deadline + 20
    clock.advance(60)
    deal = wait_for(lambda: market.deals(), what="the deal")[0]
    assert deal["buyer"] == people["carol"].address


def test_a_seller_cancels_only_before_the_first_bid(runtime, people):
    from marketplace.errors import CannotCancel

    alice = people["alice"]
    untouched = alice.list(10, 1000, 30)
    with pytest.raises(NotAllowed, match="only the seller"):
        people["bob"].cancel(untouched["id"])
    runtime.ledger.wait(runtime.txm.record(runtime.store.listing(untouched["id"])["approval_tx"]))
    assert alice.cancel(untouched["id"])["status"] == "cancelled"
    with pytest.raises(CannotCancel, match="has ended"):
        alice.cancel(untouched["id"])
    bid_on = alice.list(10, 1000, 30)
    people["bob"].bid(bid_on["id"], 1000)
    with pytest.raises(CannotCancel, match="bids bind"):
        alice.cancel(bid_on["id"])


def test_a_listing_right_after_a_cancel_asks_again_for_the_approval(runtime, people):
    """The cancel's lowering approval is still on its way (mining stopped): a new listing is
    asked for its own approval, not told the old allowance covers it (it would not, once the
    lowering lands), and lists with it."""
    alice, ledger = people["alice"], runtime.ledger
    first = alice.list(10, 1000, 30)
    ledger.wait(runtime.txm.record(runtime.store.listing(first["id"])["approval_tx"]))
    runtime.txm.set_mining(False)
    try:
        alice.cancel(first["id"])
        assert ledger.allowance(alice.address) == 10  # the lowering one waits at the node
        assert runtime.market.prepare_approval(alice.address, 10)["needed"]
        again = alice.list(10, 1000, 30)
    finally:
        runtime.txm.set_mining(True)
    ledger.wait(runtime.txm.record(runtime.store.listing(again["id"])["approval_tx"]))
    assert ledger.allowance(alice.address) == 10 and again["status"] == "open"


def test_a_pending_withdrawal_covers_no_bid(runtime, people):
    ledger = runtime.ledger
    bob = people["bob"]
    listing = people["alice"].list(10, 1000, 30)
    ledger.wait(bob.request_withdrawal(ETH // 20))  # half of bob's 0.1 ETH
    assert ledger.escrow_free(bob.address) == ETH // 10  # still free until completed …
    assert ledger.withdrawal_of(bob.address)["amount"] == ETH // 20
    # The reads a bid makes are encoded by hand (Ledger._escrow_view): web3's call agrees.
    views = ledger.escrow.functions
    assert ledger.escrow_free(bob.address) == views.freeOf(bob.address, LOTS).call()
    assert list(ledger.withdrawal_of(bob.address).values()) == \
        list(views.withdrawalOf(bob.address, LOTS).call())
    # … but it may complete before this auction's deal opens: it covers no bid.
    with pytest.raises(InsufficientEscrow, match="the 0.05 ETH you asked to withdraw"):
        bob.bid(listing["id"], 6 * 10**18)  # 10 Wh -> 0.06 ETH
    bob.bid(listing["id"], 5 * 10**18)  # 0.05 ETH: what is not asked for
    ledger.wait(bob.cancel_withdrawal())  # cancelled: all of it covers bids again
    bob.bid(listing["id"], 9 * 10**18)
