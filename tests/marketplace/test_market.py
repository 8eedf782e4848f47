"""The market on a real embedded chain and emulated boards, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from marketplace.errors import (
    AuctionClosed,
    ChainActionFailed,
    InsufficientEscrow,
    InsufficientTokens,
    NotAllowed,
)
from marketplace.store import Store
from tests.common import wait_for

ETH = 10**18


@pytest.fixture
def people(runtime):
    rt = runtime
    accounts = {a["name"]: rt.keystore.unlock(a["address"], a["passphrase"])
                for a in rt.demo_accounts}
    wait_for(lambda: rt.ledger.token_balance(accounts["alice"].address) >= 100,
             what="alice's first tokens")
    for name in ("bob", "carol"):
        rt.ledger.wait(rt.ledger.deposit(accounts[name], ETH // 10))
    return accounts


def test_unsold_listing_closes_without_a_deal(runtime, people, clock):
    market = runtime.market
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    clock.advance(30)
    wait_for(lambda: market.listing(listing["id"])["status"] == "unsold", what="unsold")
    assert market.deals() == []


def test_highest_bid_wins_equal_and_late_bids_are_refused(runtime, people, clock):
    market = runtime.market
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    market.place_bid(people["carol"], listing["id"], 5000)
    with pytest.raises(Exception, match="at least 5050"):  # 1 % over 5000
        market.place_bid(people["bob"], listing["id"], 5000)
    clock.advance(30)
    with pytest.raises(AuctionClosed):
        market.place_bid(people["bob"], listing["id"], 9000)
    deal = wait_for(lambda: market.deals(), what="a deal")[0]
    assert deal["buyer"] == people["carol"].address


def test_refusals_for_tokens_escrow_and_roles(runtime, people):
    market = runtime.market
    alice, bob = people["alice"], people["bob"]
    unlisted = market.unlisted_wh(alice.address)
    with pytest.raises(InsufficientTokens):
        market.create_listing(alice, unlisted + 1_000, 1000, 30)
    with pytest.raises(NotAllowed, match="only producers"):
        market.create_listing(bob, 1, 1000, 30)
    listing = market.create_listing(alice, 10, 1000, 30)
    with pytest.raises(InsufficientEscrow, match="deposit more"):
        market.place_bid(bob, listing["id"], 2 * 10**19)  # 0.2 ETH of 0.1
    # A bid that fits the escrow only if bob's other leading bids are ignored is refused.
    market.place_bid(bob, listing["id"], 9 * 10**18)  # 10 Wh -> 0.09 ETH of 0.1
    second = market.create_listing(alice, 10, 1000, 30)
    with pytest.raises(InsufficientEscrow):
        market.place_bid(bob, second["id"], 2 * 10**18)  # another 0.02 ETH


def test_an_acknowledged_bid_is_on_disk(runtime, people):
    market = runtime.market
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    market.place_bid(people["bob"], listing["id"], 1234)
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
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    deadline = listing["deadline"]
    clock.advance(25)  # 5 s left: inside the 10 s soft close
    after = market.place_bid(people["bob"], listing["id"], 1000)
    assert after["deadline"] == deadline + 10
    assert [p["deadline"] for t, p in seen if t == "bid_placed"] == [deadline + 10]
    clock.advance(9)  # past the first deadline, before the new one: still open
    assert market.listing(listing["id"])["status"] == "open"
    market.place_bid(people["carol"], listing["id"], 2000)
    assert market.listing(listing["id"])["deadline"] == deadline + 20
    clock.advance(60)
    deal = wait_for(lambda: market.deals(), what="the deal")[0]
    assert deal["buyer"] == people["carol"].address


def test_a_seller_cancels_only_before_the_first_bid(runtime, people):
    from marketplace.errors import CannotCancel

    market = runtime.market
    untouched = market.create_listing(people["alice"], 10, 1000, 30)
    with pytest.raises(NotAllowed, match="only the seller"):
        market.cancel_listing(people["bob"], untouched["id"])
    assert market.cancel_listing(people["alice"], untouched["id"])["status"] == "cancelled"
    with pytest.raises(CannotCancel, match="has ended"):
        market.cancel_listing(people["alice"], untouched["id"])
    bid_on = market.create_listing(people["alice"], 10, 1000, 30)
    market.place_bid(people["bob"], bid_on["id"], 1000)
    with pytest.raises(CannotCancel, match="bids bind"):
        market.cancel_listing(people["alice"], bid_on["id"])


def test_a_pending_withdrawal_covers_no_bid(runtime, people):
    market, ledger = runtime.market, runtime.ledger
    bob = people["bob"]
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    ledger.wait(ledger.request_withdrawal(bob, ETH // 20))  # half of bob's 0.1 ETH
    assert ledger.escrow_free(bob.address) == ETH // 10  # still free until completed …
    assert ledger.withdrawal_of(bob.address)["amount"] == ETH // 20
    # … but it may complete before this auction's deal opens: it covers no bid.
    with pytest.raises(InsufficientEscrow, match=f"the {ETH // 20} wei you asked to withdraw"):
        market.place_bid(bob, listing["id"], 6 * 10**18)  # 10 Wh -> 0.06 ETH
    market.place_bid(bob, listing["id"], 5 * 10**18)  # 0.05 ETH: what is not asked for
    ledger.wait(ledger.request_withdrawal(bob, 0))  # cancelled: all of it covers bids again
    market.place_bid(bob, listing["id"], 9 * 10**18)


def test_the_leader_asking_its_escrow_back_still_pays_for_the_lot(runtime, people, clock):
    """The attack: lead the auction, ask for the whole deposit back at once, hope it fails."""
    market, ledger = runtime.market, runtime.ledger
    carol = people["carol"]
    listing = market.create_listing(people["alice"], 10, 1000, 30)
    market.place_bid(carol, listing["id"], 9 * 10**18)  # 10 Wh -> 0.09 ETH of 0.1
    ledger.wait(ledger.request_withdrawal(carol, ETH // 10))  # right after bidding
    with pytest.raises(ChainActionFailed, match="NoticeNotOver"):
        ledger.complete_withdrawal(carol)  # the notice outlasts the auction and its bid
    clock.advance(30)
    deal = wait_for(lambda: [d for d in market.deals() if d["status"] == "active"],
                    what="the deal")[0]
    assert deal["buyer"] == carol.address
    assert market.listing(listing["id"])["status"] == "sold"
    cost = 9 * 10**18 * 10 // 1000
    assert ledger.escrow_locked(carol.address) == cost
    assert ledger.escrow_free(carol.address) == ETH // 10 - cost  # all the request can take
