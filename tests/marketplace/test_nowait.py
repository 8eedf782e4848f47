"""Requests never wait on I/O: a bid, a listing and a Close connection answer while the
settlement pass is stuck inside a chain call or a board exchange, and nothing they did is lost.

The chain (embedded py-evm) and the boards (emulated, on ptys) are real; what holds the pass is
a thin hook: a web3 middleware that parks the settlement loop's RPCs on a threading.Event, or a
wrapper around the local bridge's set_budget (a real serial exchange once let go). Only the
settlement loop's thread (named loop:settlement by web.runtime.loops) is held.
"""

from __future__ import annotations

import threading

import pytest
from web3.middleware.base import Web3Middleware

from tests.common import wait_for
from tests.marketplace.common import active_deal, ready

HOLD_S = 120.0  # the longest a hook holds the pass (a failing test must still end)
ANSWER_S = 30.0  # how long a request may take before the test calls it stuck


class Held:
    """Parks the settlement loop's thread on an Event once armed; says when it got there."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold_here(self) -> None:
        """Called inside the hooked I/O: hold the settlement loop there until released."""
        if self.armed.is_set() and threading.current_thread().name == "loop:settlement":
            self.entered.set()
            self.release.wait(HOLD_S)


def holding_middleware(held: Held) -> type[Web3Middleware]:
    """A web3 middleware class whose every request first passes held.hold_here()."""

    class Hold(Web3Middleware):
        def wrap_make_request(self, make_request):
            def middleware(method, params):
                held.hold_here()
                return make_request(method, params)

            return middleware

    return Hold


def answered(call, *args):
    """call(*args) in a thread of its own; its result once it answered, or a failure saying
    it did not answer within ANSWER_S (it waits on the held pass, then)."""
    out: dict = {}

    def run():
        try:
            out["value"] = call(*args)
        except BaseException as err:  # handed to the test's thread
            out["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(ANSWER_S)
    assert not worker.is_alive(), f"{getattr(call, '__name__', call)} waited on the held pass"
    if "error" in out:
        raise out["error"]
    return out["value"]



def requests_while_held(runtime, people, deal, held):
    """A listing, a bid on it and carol's Close connection, each answered while the pass is
    held; returns (listing, bid view, closing view)."""
    wait_for(held.entered.is_set, what="the settlement pass to be held")
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    listing = answered(alice.list, 10, 1000, 600)
    bid = answered(bob.bid, listing["id"], 2000)
    closing = answered(carol.close, deal["id"])
    assert not held.release.is_set()  # all three answered while the pass was still held
    assert (bid["highest_bid_wei"], bid["bid_count"]) == ("2000", 1)
    assert bid["highest_bidder"] == bob.address
    assert closing["status"] == "closing"
    return listing, bid, closing


def nothing_lost(runtime, listing, deal):
    """After the pass is let go: the listing and its bid are stored, the deal closes by its
    buyer with every Wh the escrow was told of paid, and carol's relay is off."""
    market = runtime.market
    stored = market.listing(listing["id"])
    assert stored["status"] == "open"
    assert (stored["highest_bid_wei"], stored["bid_count"]) == ("2000", 1)
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=60, what="the close")
    chain = runtime.ledger.chain_deal(deal["chain_deal_id"])
    assert closed["close_reason"] == "closed by buyer"
    assert chain["deliveredWh"] == closed["delivered_wh"] > 0
    assert chain["paidWei"] == chain["priceWeiPerKWh"] * chain["deliveredWh"] // 1000
    assert not runtime.bridge.read("load-carol").relays[0]


def test_requests_answer_while_the_pass_is_stuck_in_a_chain_call(runtime, clock):
    people = ready(runtime, wh=320)
    deal = active_deal(runtime, clock, people)
    held = Held()
    runtime.backend.w3.middleware_onion.inject(holding_middleware(held), name="hold", layer=0)
    held.armed.set()
    try:
        listing, _, _ = requests_while_held(runtime, people, deal, held)
        # The close's relay switch is the switchboard loop's, not the held pass's.
        wait_for(lambda: not runtime.bridge.read("load-carol").relays[0],
                 what="carol's relay off while the pass is held")
        assert not held.release.is_set()
    finally:
        held.armed.clear()
        held.release.set()
    nothing_lost(runtime, listing, deal)


@pytest.mark.parametrize("app", [{"STEP_WH": 1}], indirect=True)  # a report (and budget) a Wh
def test_requests_answer_while_the_pass_is_stuck_in_a_board_exchange(runtime, clock,
                                                                     monkeypatch):
    people = ready(runtime, wh=320)
    deal = active_deal(runtime, clock, people)
    held = Held()
    set_budget = runtime.bridge.set_budget

    def held_set_budget(board_id, wh, relay=0):
        # Each delivery report re-budgets the seller's board from the pass: held there.
        held.hold_here()
        return set_budget(board_id, wh, relay)

    monkeypatch.setattr(runtime.bridge, "set_budget", held_set_budget)
    held.armed.set()
    try:
        listing, _, _ = requests_while_held(runtime, people, deal, held)
        wait_for(lambda: not runtime.bridge.read("load-carol").relays[0],
                 what="carol's relay off while the pass is held")
    finally:
        held.armed.clear()
        held.release.set()
    nothing_lost(runtime, listing, deal)


def test_a_pass_deciding_from_a_row_read_before_a_close_does_not_undo_it(runtime, clock):
    # The bus check's pause, as a pass decides it from the row it read before carol pressed
    # Close connection: the close stands (no `paused` over `closing`), and it completes.
    people = ready(runtime, wh=320)
    market = runtime.market
    deal = active_deal(runtime, clock, people)
    stale = market.store.deal(deal["id"])
    with market.settlement.lock:  # the pass is under way (it holds its lock), the close is not
        assert people["carol"].close(deal["id"])["status"] == "closing"
        market.settlement.pause(stale, "the bus check: meters disagree")
        assert market.deal(deal["id"])["status"] == "closing"
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=60, what="the close")
    assert closed["close_reason"] == "closed by buyer"
