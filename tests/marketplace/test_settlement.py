"""Settlement that survives trouble: the chain down at the deadline, simultaneous closes, expiry."""

from __future__ import annotations

import time

import pytest

from tests.common import wait_for
from tests.marketplace.common import active_deal, ready


def deal_of_listing(runtime, listing_id):
    """The escrow's deal opened from a listing's signed offer (0: none)."""
    offer_hash = runtime.store.listing(listing_id)["offer_hash"]
    return runtime.ledger.deal_of_offer(bytes.fromhex(offer_hash[2:]))


@pytest.mark.parametrize("app", ["anvil://"], indirect=True)
def test_chain_down_at_the_deadline_the_deal_opens_once_after_it_returns(runtime, clock):
    people = ready(runtime)
    market, chain = runtime.market, runtime.backend
    listing = people["alice"].list(10, 1000, 30)
    people["bob"].bid(listing["id"], 2000)
    # The seller's approval, queued with the listing, is in; then the node goes away.
    approval = runtime.txm.record(runtime.store.listing(listing["id"])["approval_tx"])
    wait_for(lambda: approval.status == "mined", what="the approval")
    chain.stop()  # the node is gone when the auction closes (it saves its state first)
    clock.advance(31)
    wait_for(lambda: market.deals(), what="the auction to close")
    wait_for(lambda: market.settlement.retrying(), what="a failed send and a retry planned")
    assert market.deals()[0]["status"] == "opening"
    assert not runtime.bridge.read("pv-alice").relays[0]  # nothing switched before the chain
    chain.start()  # same state file, same port
    clock.advance(60)  # past the retry backoff
    deal = wait_for(opened_after_retries(market, clock), what="the deal to open after recovery")
    assert runtime.ledger.escrow.functions.dealCount().call() == 1
    assert deal_of_listing(runtime, listing["id"]) == deal["chain_deal_id"]
    assert runtime.bridge.read("pv-alice").relays[0]


def opened_after_retries(market, clock):
    """The active deal, or None: then the hand-moved clock passes the next retry (the backoff
    is on the market clock and a send may fail again while the node comes up on a loaded
    machine), every 2 s of wall time so far less than the bid's hour of validity."""
    moved = [time.monotonic()]

    def opened():
        deal = next((d for d in market.deals() if d["status"] == "active"), None)
        if deal is None and time.monotonic() - moved[0] >= 2.0:
            clock.advance(31)  # the longest backoff is 30 s
            moved[0] = time.monotonic()
        return deal

    return opened


def test_two_auctions_closing_at_the_same_instant(runtime, clock):
    people = ready(runtime)
    market = runtime.market
    first = people["alice"].list(10, 1000, 30)
    second = people["alice"].list(12, 1000, 30)
    people["bob"].bid(first["id"], 3000)
    people["carol"].bid(second["id"], 4000)
    clock.advance(30)
    # Opened: delivering, or already done (10 and 12 Wh deliver in seconds at the emulator's
    # speed, so on a loaded machine a poll can miss the moment both are active at once).
    def both_opened():
        opened = [d for d in market.deals() if d["chain_deal_id"] is not None
                  and d["status"] in ("active", "closed")]
        return opened if len(opened) == 2 else None

    deals = wait_for(both_opened, what="both deals to open")
    by_listing = {d["listing_id"]: d for d in deals}
    assert by_listing[first["id"]]["buyer"] == people["bob"].address
    assert by_listing[second["id"]]["buyer"] == people["carol"].address
    ledger = runtime.ledger
    assert ledger.escrow.functions.dealCount().call() == 2
    assert {deal_of_listing(runtime, first["id"]), deal_of_listing(runtime, second["id"])} == {
        d["chain_deal_id"] for d in deals}


@pytest.mark.parametrize("app", [{"DEAL_TTL_S": 60}], indirect=True)
def test_an_expired_deal_is_stopped_and_closed(runtime, clock):
    people = ready(runtime)
    market = runtime.market
    listing = people["alice"].list(40, 1000, 30)
    people["carol"].bid(listing["id"], 1000)
    clock.advance(30)
    deal = wait_for(lambda: next((d for d in market.deals() if d["status"] == "active"), None),
                    what="the deal")
    clock.advance(61)
    runtime.backend.time_travel(int(clock.now()) + 1)  # the chain's clock passes expiry too
    runtime.backend.mine()
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=30, what="the expired deal to close")
    assert closed["close_reason"] == "expired"
    assert not runtime.bridge.read("load-carol").relays[0]
    assert runtime.ledger.escrow_locked(people["carol"].address) == 0



def test_a_meter_offline_pauses_the_deal_then_ends_it(runtime, clock):
    people = ready(runtime, wh=300)
    market, grid = runtime.market, runtime.microgrid
    deal = active_deal(runtime, clock, people, wh=300)  # ~7 s of load at 600x: time to act
    grid.unplug("load-carol")
    wait_for(lambda: market.deal(deal["id"])["error"], what="the market to notice")
    clock.advance(11)  # past the 10 s grace
    paused = wait_for(lambda: market.deal(deal["id"])["status"] == "paused"
                      and market.deal(deal["id"]), what="the deal to pause")
    assert "load-carol offline" in paused["error"]
    assert not runtime.bridge.read("pv-alice").relays[0]  # the seller stops supplying
    clock.advance(60)
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=30, what="the deal to end")
    assert closed["close_reason"] == "meter offline"
    assert runtime.ledger.escrow_locked(people["carol"].address) == 0


@pytest.mark.parametrize("app", [{"LOAD_W": 24}], indirect=True)  # slow: still running after
def test_a_meter_back_in_time_resumes_the_deal(runtime, clock):
    people = ready(runtime, wh=300)
    market, grid = runtime.market, runtime.microgrid
    deal = active_deal(runtime, clock, people, wh=300)  # ~7 s of load at 600x: time to act
    grid.unplug("load-carol")
    wait_for(lambda: market.deal(deal["id"])["error"], what="the market to notice")
    clock.advance(11)
    wait_for(lambda: market.deal(deal["id"])["status"] == "paused", what="the pause")
    grid.replug("load-carol")
    wait_for(lambda: runtime.bridge.online("load-carol"), timeout=20, what="the board back")
    wait_for(lambda: market.deal(deal["id"])["status"] == "active", what="the deal to resume")
    assert runtime.bridge.read("pv-alice").relays[0]
    assert runtime.bridge.read("load-carol").relays[0]


def test_an_empty_seller_battery_ends_the_deal(runtime, clock):
    people = ready(runtime, wh=300)
    market = runtime.market
    deal = active_deal(runtime, clock, people, wh=300)  # ~7 s of load at 600x: time to act
    runtime.microgrid.set_battery("pv-alice", 0.0, pv_peak_w=0.0)  # drained, and night falls
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=30, what="the deal to end")
    assert closed["close_reason"] == "seller's supply exhausted"
    assert not runtime.bridge.read("load-carol").relays[0]


@pytest.mark.parametrize("app", [{"LOAD_W": 30, "STEP_WH": 1000}], indirect=True)
def test_close_connection_pays_the_last_wh_before_the_buyers_own_close(runtime, clock):
    # STEP_WH 1000: no delivery report goes out before the close, so only the final one pays.
    people = ready(runtime)
    market = runtime.market
    deal = active_deal(runtime, clock, people, wh=40)
    wait_for(lambda: market.deal(deal["id"])["delivered_wh"] >= 3, what="some delivery")
    runtime.txm.set_mining(False)  # both transactions wait: the close must not overtake
    try:
        closing = people["carol"].close(deal["id"])
        # The final report waits for both meters' readings signed after the relays opened.
        assert closing["status"] == "closing" and closing["final_report"]["status"] == "waiting"
        wait_for(lambda: market.deal(deal["id"])["final_report"]["tx_hash"],
                 what="the final report sent")
    finally:
        runtime.txm.set_mining(True)
    _closed_with_every_wh_paid(runtime, deal)
    assert not runtime.bridge.read("load-carol").relays[0]


@pytest.mark.parametrize("app", [{"LOAD_W": 30, "STEP_WH": 1000}], indirect=True)
def test_a_wallet_that_sends_itself_closes_after_the_final_report(runtime, clock):
    # An injected wallet (MetaMask) sends closeDeal through its own RPC: the portal stops the
    # delivery and sends the final report first; the view names it, the wallet waits for it.
    people = ready(runtime)
    market, ledger, carol = runtime.market, runtime.ledger, people["carol"]
    deal = active_deal(runtime, clock, people, wh=40)
    wait_for(lambda: market.deal(deal["id"])["delivered_wh"] >= 3, what="some delivery")
    closing = market.close_connection(carol.address, deal["id"])  # no signed close given
    assert closing["status"] == "closing"
    # The switch is queued by the request and carried out by the switchboard's loop.
    wait_for(lambda: not runtime.bridge.read("load-carol").relays[0], what="carol's relay off")
    sent = wait_for(lambda: market.deal(deal["id"])["final_report"]["tx_hash"],
                    what="the final report, from readings signed after the switch")
    final = runtime.txm.record(sent)
    assert final is not None
    ledger.wait(final)
    # The wallet's own closeDeal, signed and sent by it (here: carol's key, straight to the node).
    tx = ledger.user_tx("EnergyEscrow", "closeDeal", [deal["chain_deal_id"]])
    ledger.wait(runtime.txm.send(carol.account, tx, "closeDeal from the wallet"))
    _closed_with_every_wh_paid(runtime, deal)


def _closed_with_every_wh_paid(runtime, deal):
    """Wait for the buyer's close; the escrow was told every Wh metered and paid for it."""
    market = runtime.market
    closed = wait_for(lambda: market.deal(deal["id"])["status"] == "closed"
                      and market.deal(deal["id"]), timeout=30, what="the close")
    chain = runtime.ledger.chain_deal(deal["chain_deal_id"])
    assert closed["close_reason"] == "closed by buyer"
    assert chain["deliveredWh"] == closed["delivered_wh"] >= 3
    assert chain["paidWei"] == chain["priceWeiPerKWh"] * chain["deliveredWh"] // 1000 > 0


def _stale_baselines(runtime, monkeypatch, how_many):
    """The first how_many delivery reports carry carol's meter reading signed before her deal
    opened (the escrow reverts it: ReadingOutOfTime); returns (reports sent, relay switches
    each with the statuses of the reports sent by then)."""
    market = runtime.market
    stale = wait_for(lambda: market.switchboard.signed("load-carol"), what="a signed reading")
    # A reading of a later second exists before the auction closes: the stale one predates it.
    wait_for(lambda: market.switchboard.signed("load-carol").timestamp > stale.timestamp,
             what="a newer signed reading")
    sent, switched = [], []
    report, relays = runtime.ledger.report_delivery_async, market.switchboard.relays

    def stale_report(deal_id, seller, buyer):
        record = report(deal_id, seller, stale if len(sent) < how_many else buyer)
        sent.append(record)
        return record

    def recorded_relays(row, on):
        switched.append((on, [r.status for r in sent]))
        relays(row, on)

    monkeypatch.setattr(runtime.ledger, "report_delivery_async", stale_report)
    monkeypatch.setattr(market.switchboard, "relays", recorded_relays)
    return sent, switched


def test_a_reverted_baseline_keeps_the_relays_off_until_one_is_mined(runtime, clock,
                                                                     monkeypatch):
    """F1b (review): activation switched the relays on without the baseline's receipt; a
    baseline that reverted left what flowed before the next report unpaid and the store with a
    baseline the escrow never had. Now the relays close only once a baseline is mined, one
    sent again from fresh readings, and the stored baseline is the escrow's."""
    people = ready(runtime)
    sent, switched = _stale_baselines(runtime, monkeypatch, how_many=1)
    market = runtime.market
    deal = active_deal(runtime, clock, people, wh=40)
    on = [statuses for closed, statuses in switched if closed]
    assert on, "the relays were switched on"
    # When the relays first closed: the stale baseline had reverted, the fresh one was mined.
    assert on[0][:2] == ["failed", "mined"], on[0]
    assert "ReadingOutOfTime" in (sent[0].error or ""), sent[0].error
    chain = runtime.ledger.chain_deal(deal["chain_deal_id"])
    assert chain["started"]
    assert market.deal(deal["id"])["status"] == "active"
    assert runtime.store.deal(deal["id"])["baseline_wh"] == chain["buyerBaseWh"]


def test_baselines_that_keep_reverting_fail_the_deal_and_refund_the_buyer(runtime, clock,
                                                                          monkeypatch):
    """F1b (review): a deal whose baseline never lands does not deliver; after its retries it
    fails with the reason and the operator's fault close refunds the buyer."""
    from marketplace.opening import BASELINE_TRIES

    people = ready(runtime)
    sent, switched = _stale_baselines(runtime, monkeypatch, how_many=10**6)
    market = runtime.market
    listing = people["alice"].list(40, 1000, 30)
    people["carol"].bid(listing["id"], 1000)
    clock.advance(30)
    failed = wait_for(lambda: (d := market.deals()) and d[0]["status"] == "failed" and d[0],
                      timeout=60, what="the deal to fail")
    assert f"baseline report failed {BASELINE_TRIES} times" in failed["error"]
    assert "ReadingOutOfTime" in failed["error"]
    assert len(sent) == BASELINE_TRIES and all(r.status == "failed" for r in sent)
    assert not [statuses for closed, statuses in switched if closed]  # never switched on
    chain = runtime.ledger.chain_deal(failed["chain_deal_id"])
    assert chain["status"] == 2 and not chain["started"]  # Closed, never started
    assert runtime.ledger.escrow_locked(people["carol"].address) == 0
    assert not runtime.bridge.read("load-carol").relays[0]
