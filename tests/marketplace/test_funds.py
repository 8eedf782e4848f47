"""Bids and listings read the chain's values as kept (marketplace.funds): no chain call once an
account's funds are known, and a deposit or withdrawal made through another worker shows after
one pass of the funds loop.

The chain is real (embedded py-evm, anvil): calls are counted on the real Web3 instance (the
bidding thread's JSON-RPC requests, geth_private.counting) and on the real ledger's read
methods, wrapped to count; nothing of the chain is mocked.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager

import pytest

from geth_private import TxManager
from geth_private.counting import RpcCounter
from gridbid_client.local import LocalParty
from marketplace.errors import InsufficientEscrow
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.market import Market
from marketplace.wallet import Wallets
from tests.common import wait_for
from tests.marketplace.common import ETH, ready, unlocked

READS = ("escrow_funds_at", "tokens_at", "block_number", "escrow_free", "withdrawal_of",
         "token_balance", "allowance", "offer_used", "eth_balance")


@contextmanager
def chain_calls(ledger):
    """Counter of this thread's chain calls inside the block: JSON-RPC requests by method, and
    calls of the ledger's read methods (ledger.<name>)."""
    me, seen = threading.get_ident(), Counter()
    rpc = RpcCounter(ledger.w3)

    def wrapped(name, real):
        def counted(*args, **kwargs):
            if threading.get_ident() == me:
                seen[f"ledger.{name}"] += 1
            return real(*args, **kwargs)
        return counted

    for name in READS:
        setattr(ledger, name, wrapped(name, getattr(ledger, name)))
    try:
        with rpc.counting() as calls:
            yield seen
            seen.update(calls)
    finally:
        rpc.remove()
        for name in READS:
            delattr(ledger, name)  # the class's method again


def quiet_tokens(runtime, monkeypatch):
    """Minting held and its sends mined: alice's tokens stand still (a mint naming her makes
    her kept tokens be read again, rightly)."""
    monkeypatch.setattr(runtime.market.minting, "step", lambda readings: None)
    wait_for(lambda: not runtime.txm.pending(), what="the mints under way to be mined")


def test_a_bid_and_a_listing_make_no_chain_call_once_funds_are_known(runtime, monkeypatch):
    people = ready(runtime)
    market, ledger = runtime.market, runtime.ledger
    alice, bob = people["alice"], people["bob"]
    quiet_tokens(runtime, monkeypatch)
    first = alice.list(10, 1000, 600)
    bob.bid(first["id"], 1000)  # bob never signed in: his first bid read his funds itself
    funds = market.auctions.funds  # and had the loop read and keep them (and alice's tokens)
    wait_for(lambda: funds.known(bob.address) and funds.known(alice.address),
             what="the funds loop to keep bob's funds and alice's tokens")
    offer, signature = alice.offer(10, 1000, 600)
    prepared = market.prepare_approval(alice.address, 10)  # a prepare asks the node (nonce)
    approval = alice.sign(prepared) if prepared["needed"] else None
    wait_for(lambda: not runtime.txm.pending(), what="the first listing's approval mined")
    with chain_calls(ledger) as calls:
        for price in (2000, 3000):
            terms = market.bid_terms(bob.address, first["id"], price)
            market.place_bid(bob.address, first["id"], terms["message"], bob._sign(terms))
        market.offer_terms(alice.address, 10, 1000, 600)
        second = market.create_listing(alice.address, offer, signature, approval, None, 10, 1000)
        market.unlisted_wh(alice.address)
    assert calls == Counter(), calls
    assert market.listing(first["id"])["highest_bid_wei"] == "3000"
    assert second["status"] == "open"


def test_a_bid_over_the_kept_funds_is_refused_with_the_same_sentence(runtime):
    people = ready(runtime)
    bob = people["bob"]
    listing = people["alice"].list(10, 1000, 600)
    bob.bid(listing["id"], 1000)  # read by the bid itself, then kept by the funds loop
    funds = runtime.market.auctions.funds
    wait_for(lambda: funds.known(bob.address), what="the funds loop to keep bob's funds")
    with chain_calls(runtime.ledger) as calls, pytest.raises(
            InsufficientEscrow, match=r"this bid needs 0\.2 ETH \(10 Wh at 20 ETH/kWh\); you "
            r"have 0\.1 ETH free in the escrow; deposit more"):
        bob.bid(listing["id"], 2 * 10**19)  # 0.2 ETH of 0.1
    assert calls == Counter(), calls


def test_a_deposit_here_shows_in_the_kept_funds_once_mined(runtime):
    people = ready(runtime)
    funds, bob = runtime.market.auctions.funds, people["bob"]
    listing = people["alice"].list(10, 1000, 600)
    bob.bid(listing["id"], 1000)
    runtime.ledger.wait(bob.deposit(ETH // 10))  # through this worker: its receipt names bob
    assert funds.of(bob.address) == (2 * ETH // 10, 0)
    bob.bid(listing["id"], 15 * 10**18)  # 0.15 ETH: covered by the two deposits only


def other_worker(runtime):
    """A second portal worker on the same chain and store: its own transaction manager,
    ledger and market (so its own kept funds), none of them this runtime's."""
    txm = TxManager(runtime.backend)
    ledger = Ledger(txm, runtime.ledger.operator)
    ledger.attach(runtime.ledger.addresses())
    market = Market(runtime.store, ledger, runtime.board_router, runtime.clock, Hub(),
                    runtime.market.settings)
    return market, Wallets(market)


@pytest.mark.parametrize("app", ["embedded://", "anvil://"], indirect=True)
def test_another_workers_deposit_and_withdrawal_show_after_one_pass(runtime):
    people = ready(runtime)
    funds, ledger = runtime.market.auctions.funds, runtime.ledger
    listing = people["alice"].list(10, 1000, 600)
    people["bob"].bid(listing["id"], 1000)
    here = people["bob"]
    assert funds.of(here.address) == (ETH // 10, 0)
    market, wallets = other_worker(runtime)
    key = unlocked(runtime)["bob"].account
    there = LocalParty(market, wallets, key)
    market.ledger.wait(there.deposit(ETH // 10))  # this worker's manager never saw it
    funds.step()  # one pass of this worker's funds loop (or the loop's own, waited for)
    with chain_calls(ledger) as calls:
        assert funds.of(here.address) == (2 * ETH // 10, 0)
    assert calls == Counter(), calls
    market.ledger.wait(there.request_withdrawal(ETH // 10))
    funds.step()
    with chain_calls(ledger) as calls, pytest.raises(
            InsufficientEscrow, match=r"of which the 0\.1 ETH you asked to withdraw covers no bid"):
        here.bid(listing["id"], 15 * 10**18)  # 0.15 ETH of 0.2, 0.1 of it withdrawing
    assert calls == Counter(), calls
    here.bid(listing["id"], 10 * 10**18)  # 0.1 ETH: what is not asked for


def test_signing_in_reads_the_funds_in_the_loop_not_in_the_first_bid(runtime, login):
    people = ready(runtime)
    market, carol = runtime.market, people["carol"]
    listing = people["alice"].list(10, 1000, 600)
    login("carol")  # POST /api/login (SIWE): learns her funds, read by the loop
    market.auctions.funds.step()  # the loop's pass (woken by the sign-in; waited for here)
    with chain_calls(runtime.ledger) as calls:
        view = carol.bid(listing["id"], 1000)
    assert calls == Counter(), calls
    assert view["highest_bidder"] == carol.address


def test_a_listing_its_kept_tokens_would_refuse_reads_them_once(runtime):
    """A mint mined a moment ago shows in another worker's kept tokens only after its funds
    loop's next pass: a listing (its terms first) of every token alice now holds, made through
    that worker before the pass, is not refused with the stale balance."""
    people = ready(runtime)
    alice = people["alice"].address
    market, wallets = other_worker(runtime)  # its funds loop is not running: passes by hand
    funds = market.auctions.funds
    funds.learn(alice)
    funds.step()
    kept = funds.tokens(alice)[0]
    held = wait_for(lambda: (n := runtime.ledger.token_balance(alice)) > kept and n,
                    what="a mint after the kept read")  # this runtime's minting, not its own
    assert funds.tokens(alice)[0] == kept  # no pass since: the kept value lags the mint
    there = LocalParty(market, wallets, unlocked(runtime)["alice"].account)
    listing = there.list(held, 1000, 600)  # the offer's terms, then the listing
    assert (listing["status"], listing["energy_wh"]) == ("open", held)


@pytest.mark.parametrize("app", ["anvil://"], indirect=True)
def test_a_chain_that_went_back_has_the_known_funds_read_again(runtime):
    people = ready(runtime)
    funds, w3 = runtime.market.auctions.funds, runtime.ledger.w3
    listing = people["alice"].list(10, 1000, 600)
    people["bob"].bid(listing["id"], 1000)
    funds.step()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    market, wallets = other_worker(runtime)
    there = LocalParty(market, wallets, unlocked(runtime)["bob"].account)
    market.ledger.wait(there.deposit(ETH // 10))
    funds.step()
    assert funds.of(people["bob"].address) == (2 * ETH // 10, 0)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"]  # the node forgets it
    funds.step()  # the head is below the cursor, or another block sits where it read
    with chain_calls(runtime.ledger) as calls:
        assert funds.of(people["bob"].address) == (ETH // 10, 0)
    assert calls == Counter(), calls


@pytest.mark.parametrize("app", ["anvil://"], indirect=True)
def test_a_read_from_before_the_chain_went_back_is_not_kept_after_it(runtime):
    """A worker's read of bob (a request's: he is not known here) returns from the node just
    before the chain goes back (anvil from an older dump; evm_revert here), and is kept only
    after the funds loop's pass saw the rewind. The interleaving is forced by running the
    revert and the pass inside the ledger's read (the real one, on the real chain)."""
    from marketplace.funds import Funds

    people = ready(runtime)
    ledger, w3 = runtime.ledger, runtime.ledger.w3
    bob = people["bob"].address
    funds = Funds(ledger)  # this worker's kept funds, bob never read yet
    funds.step()  # first pass: the cursor at the head
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    market, wallets = other_worker(runtime)
    there = LocalParty(market, wallets, unlocked(runtime)["bob"].account)
    market.ledger.wait(there.deposit(ETH // 10))  # 0.2 ETH on this history only
    real, armed = ledger.escrow_funds_at, [True]

    def read_then_rewind(address, block):
        value = real(address, block)
        if armed and armed.pop():
            assert w3.provider.make_request("evm_revert", [snapshot])["result"]
            funds.step()  # the loop's pass meanwhile: it sees the chain went back
        return value

    ledger.escrow_funds_at = read_then_rewind
    try:
        funds.of(bob)  # the request's own read: the old history's 0.2 ETH
    finally:
        del ledger.escrow_funds_at
    market.ledger.wait(there.request_withdrawal(ETH // 10))  # on the new history
    funds.step()
    # The chain holds 0.1 ETH free, all of it asked to be withdrawn.
    assert ledger.escrow_funds_at(bob, ledger.block_number()) == (ETH // 10, ETH // 10)
    assert funds.of(bob) == (ETH // 10, ETH // 10)


@pytest.mark.parametrize("app", ["anvil://"], indirect=True)
def test_a_wallet_after_the_chain_went_back_shows_the_new_history_s_escrow(runtime, monkeypatch):
    """Wallets.summary reads a wallet again when the head's hash changed (a chain that went
    back: anvil from an older dump; evm_revert here). All of it must be read again: the escrow
    values too, not the ledger's per-block-number copy of the history that is gone."""
    people = ready(runtime)
    quiet_tokens(runtime, monkeypatch)
    w3, wallets, bob = runtime.ledger.w3, runtime.wallets, people["bob"].address
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    start = w3.eth.block_number
    runtime.ledger.wait(people["bob"].deposit(ETH // 10))  # 0.2 ETH on this history only
    assert w3.eth.block_number == start + 1
    assert wallets.summary(bob)["escrow_free_wei"] == str(2 * ETH // 10)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"]
    runtime.backend.mine(1)  # another block where the deposit's was
    assert w3.eth.block_number == start + 1
    assert runtime.ledger.escrow_funds_at(bob, start + 1)[0] == ETH // 10  # the node says so
    shown = wallets.summary(bob)
    assert shown["escrow_free_wei"] == str(ETH // 10), shown["escrow_free_wei"]
