"""A stale closing never takes in the account's next fill (issue 16, the chaos day with the
chain kind): consumer c1's last 1 Wh position was refused OVER_METERED at every boundary to
the day's end, and its seller's POOL_SHORT.

A boundary stores a board's cached signed reading, so an interval's end reading can be the
very one the account last settled on. That position closed on the next newer boundary
reading even past an interval holding the account's next fill (another order's); the
contract then counted the next position's Wh from a reading that already held them.

Real IntervalSettlement on the embedded chain (a Ledger deployed as the portal does), a real
store (SQLite), the readings signed by the buyer's meter key, Batching sending and following
the batches; the intervals, readings and fills are written as the boundaries would.
"""

from __future__ import annotations

import pytest

from contracts.bindings import sign_buy_order
from firmware_bridge.signing import sign_reading
from geth_private import TxManager, backend_from_uri
from marketplace.intervals.batching import Batching
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import StandingOrders
from marketplace.intervals.store import NOTHING_OWED, IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.store import Store
from tests.contracts.common import (
    DEAL_DURATION,
    FILL_PRICE,
    INTERVAL_S,
    LEDGER_WALL_S,
    MAX_RATED_W,
    NOTICE,
    first_of_five,
    ledger_community,
)


class Clock:
    """The market clock Batching stamps its batches with (nothing here waits on it)."""

    def now(self) -> float:
        return 0.0


@pytest.fixture
def town(tmp_path):
    """A deployed Ledger with a funded buyer and its meter, a store, and Batching over them."""
    with backend_from_uri("embedded://", str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=INTERVAL_S,
                      interval_wall_s=LEDGER_WALL_S, anyone_after_s=600, max_line_loss_bps=250)
        community = ledger_community(node, ledger)
        store = Store(str(tmp_path / "market.sqlite"))
        istore = IntervalStore(store)
        settings, boundaries = Settings(settle_wh=1), Boundaries(INTERVAL_S, 600)
        orders = StandingOrders(istore, ledger, Clock(), settings, boundaries)
        made = Batching(istore, orders, ledger, Clock(), settings, boundaries,
                        members=lambda: [], signed=lambda board: None)
        yield community, istore, made
        store.close()


def order(community, istore: IntervalStore, nonce: int) -> int:
    """One of the buyer's standing orders, signed by it, stored as the portal stores it."""
    ledger, buyer = community.ledger, community.buyer
    terms = {**community.buy, "nonce": nonce}
    signature = "0x" + sign_buy_order(buyer, terms, ledger.intervals.domain()).hex()
    digest = "0x" + ledger.intervals.order_hash("buy", terms).hex()
    return istore.add_order(buyer.address, "buy", terms, signature, digest, float(nonce))


def boundary(istore: IntervalStore, n: int, start: dict, end: dict) -> None:
    """Interval n cleared, with the buyer meter's boundary readings."""
    assert istore.claim(n, float(n), "w", "clear")
    istore.clear_interval(n, FILL_PRICE, {"offers": [], "bids": [], "fills": [], "orders": []})
    meter = start["meter"]
    istore.add_reading(n, meter, "start", start)
    istore.add_reading(n, meter, "end", end)


def fill(istore: IntervalStore, buyer: str, n: int, order_id: int, billed: int) -> None:
    """The buyer's fill of interval n, accounted at billed Wh for FILL_PRICE."""
    istore.add_fill(n, buyer, "buy", order_id, max(billed, 1), FILL_PRICE)
    (row,) = istore.fills(n)
    istore.account_fill(row["id"], billed, billed, FILL_PRICE * billed // 1000)


def settle(made: Batching, through_n: int) -> None:
    """One boundary's batching, then its batch followed to its receipt."""
    made.step(through_n)
    made.step(through_n)  # follows the mined batch (nothing is built twice a boundary)
    assert not made.istore.batches(status="sent")


def test_a_stale_closing_stops_before_the_next_fill_of_another_order(town):
    community, istore, made = town
    buyer, meter = community.buyer.address, community.buyer_meter
    domain, now = community.ledger.reading_domain(), community.now

    def read(wh: int, ago: int) -> dict:
        return sign_reading(meter, domain, wh, 0, now - ago).to_json()

    n = first_of_five(now, LEDGER_WALL_S)  # n..n+4 in one day, all ended by now
    first, second = order(community, istore, 2), order(community, istore, 3)
    r0, r1, r2, r3 = read(4_000, 40), read(4_010, 30), read(4_013, 20), read(4_013, 10)
    boundary(istore, n, r0, r1)
    fill(istore, buyer, n, first, 10)
    settle(made, n)  # the account settled on r1
    assert community.ledger.intervals.position_of(buyer, meter.address)["last_wh"] == 4_010
    # Its bridge away: interval n+1 starts and ends on the cached r1, metered and billed 0.
    boundary(istore, n + 1, r1, r1)
    fill(istore, buyer, n + 1, first, 0)
    # Back: its next order's fill in n+2 metered 3 Wh; then its relay open, nothing more.
    boundary(istore, n + 2, r1, r2)
    fill(istore, buyer, n + 2, second, 3)
    boundary(istore, n + 3, r2, r3)
    for through in (n + 3, n + 4):
        settle(made, through)
    events = community.ledger.intervals.events(0)
    refused = [e["args"]["reason_name"] for e in events if e["event"] == "PositionRefused"]
    settled = [(e["args"]["fromInterval"], e["args"]["toInterval"], e["args"]["wh"],
                e["args"]["meterWh"]) for e in events if e["event"] == "PositionSettled"]
    assert refused == []
    # The 0 Wh fill of n+1 owed nothing: no position of its own; the next one closes on r2.
    assert settled == [(n, n, 10, 4_010), (n + 2, n + 2, 3, 4_013)]
    assert istore.unsettled() == []
    assert [f["settled_batch"] for f in istore.fills(n + 1)] == [NOTHING_OWED]
