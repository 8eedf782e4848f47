"""Two settle batches over the same fills after anvil went back (issue 16, the chaos day with
the chain kind: "nonce 10 was used elsewhere; sending with 11", then "settled on chain by no
batch kept here" at every boundary, 55 fills unsettled at the day's end).

Worker A's batch X settles the buyer's fill of interval n and is followed to mined. anvil is
SIGKILLed and comes back from a dump before X. The settlement lease is worker B's now: B's
batching reopens X (the chain forgot it), finds it unknown to the node and, once that lasted
FORGOTTEN_AFTER_S (set to 0 here: the 45 s passed), fails it. A still holds X's signed bytes
and sends them again (its transaction manager fills the nonce gap a later send of its waits
behind). B builds its batch Y over the fills of n and n+1 with its own count of the
operator's nonces, which A's resend used: Y goes out under the next nonce and is mined after
X, its position refused NOT_AFTER_LAST. The chain now holds n settled, by X.

A real anvil with its state file and a real SIGKILL, the real contracts (a Ledger deployed as
the portal does), two transaction managers with the operator's key (two workers), one store;
the intervals, readings and fills are written as the boundaries would.
"""

from __future__ import annotations

import logging

import pytest

from contracts.bindings import sign_buy_order
from firmware_bridge.signing import sign_reading
from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from marketplace.intervals import chainside
from marketplace.intervals.batching import Batching
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import StandingOrders
from marketplace.intervals.store import IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.store import Store
from tests.common import wait_for
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

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it")


class Clock:
    """The market clock Batching stamps its batches with (nothing here waits on it)."""

    def now(self) -> float:
        return 0.0


def worker(node, addresses, istore: IntervalStore) -> Batching:
    """One portal worker's batching: its own transaction manager (its own count of the
    operator's nonces) over the shared node, contracts and store."""
    ledger = Ledger(TxManager(node), node.faucet())
    ledger.attach(addresses)
    settings, boundaries = Settings(settle_wh=1), Boundaries(INTERVAL_S, 600)
    orders = StandingOrders(istore, ledger, Clock(), settings, boundaries)
    return Batching(istore, orders, ledger, Clock(), settings, boundaries,
                    members=lambda: [], signed=lambda board: None)


@pytest.fixture
def town(tmp_path):
    """A deployed Ledger with a funded buyer and its meter on anvil, a store, worker A's and
    worker B's batching."""
    with backend_from_uri("anvil://?interval=3600", str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        addresses = ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=INTERVAL_S,
                                  interval_wall_s=LEDGER_WALL_S, anyone_after_s=600,
                                  max_line_loss_bps=250)
        community = ledger_community(node, ledger)
        store = Store(str(tmp_path / "market.sqlite"))
        istore = IntervalStore(store)
        yield (node, community, istore, worker(node, addresses, istore),
               worker(node, addresses, istore))
        store.close()


def boundary(istore: IntervalStore, n: int, start: dict, end: dict) -> None:
    """Interval n cleared, with the buyer meter's boundary readings."""
    assert istore.claim(n, float(n), "w", "clear")
    istore.clear_interval(n, FILL_PRICE, {"offers": [], "bids": [], "fills": [], "orders": []})
    istore.add_reading(n, start["meter"], "start", start)
    istore.add_reading(n, start["meter"], "end", end)


def fill(istore: IntervalStore, buyer: str, n: int, order_id: int, billed: int) -> int:
    """The buyer's fill of interval n, accounted at billed Wh for FILL_PRICE; its id."""
    istore.add_fill(n, buyer, "buy", order_id, billed, FILL_PRICE)
    (row,) = istore.fills(n)
    istore.account_fill(row["id"], billed, billed, FILL_PRICE * billed // 1000)
    return row["id"]


def restart(node, ledger, kill: bool) -> None:
    """anvil stopped (it dumps its state) or SIGKILLed (the blocks since its dump lost) and
    started from its state file; its clock put back where the chain's was (the tests' chain
    runs an hour ahead of the wall: the restarted node stamps blocks with wall time)."""
    head = ledger.head_timestamp()
    node.kill() if kill else node.stop()
    node.start()
    node.time_travel(max(head, ledger.head_timestamp()) + 1)


def followed(made: Batching) -> bool:
    """The worker's transaction loop polled its receipts (none runs here), then its batching
    followed its batches: whether none is in flight now."""
    made.ledger.txm.poll()
    return not made._follow()


def second_order(community, istore: IntervalStore):
    """The buyer's second buy order stored, and interval n's boundary readings of its meter:
    (read, order, n), read(wh, ago) signing a reading of the buyer's meter ago seconds back."""
    ledger, buyer, meter = community.ledger, community.buyer, community.buyer_meter
    domain, now = ledger.reading_domain(), community.now

    def read(wh: int, ago: int) -> dict:
        return sign_reading(meter, domain, wh, 0, now - ago).to_json()

    terms = {**community.buy, "nonce": 2}
    signature = "0x" + sign_buy_order(buyer, terms, ledger.intervals.domain()).hex()
    digest = "0x" + ledger.intervals.order_hash("buy", terms).hex()
    order = istore.add_order(buyer.address, "buy", terms, signature, digest, 1.0)
    n = first_of_five(now, LEDGER_WALL_S)
    boundary(istore, n, read(4_000, 40), read(4_010, 30))
    return read, order, n


def batch(istore: IntervalStore, batch_id: int) -> dict:
    return next(b for b in istore.batches() if b["id"] == batch_id)


# A's bytes reach the node before B builds (the chain shows n settled: its fills grew since X),
# or between B's build and its send (Y under the nonce after X's, refused NOT_AFTER_LAST).
@pytest.mark.parametrize("resent", ["before B builds", "while B sends"])
def test_a_batch_failed_as_forgotten_and_mined_after_all_is_adopted_by_its_fills(
        town, monkeypatch, caplog, resent):
    node, community, istore, a, b = town
    ledger, buyer, meter = community.ledger, community.buyer, community.buyer_meter
    read, order, n = second_order(community, istore)
    first = fill(istore, buyer.address, n, order, 10)
    # B held the lease before: it sent from the operator's account, so it counts its nonces.
    b.ledger.fund(community.seller.address, 1)
    restart(node, ledger, kill=False)  # its state file: the dump the crash goes back to

    a.step(n)
    wait_for(lambda: followed(a), timeout=30, what="A's batch X mined")
    (x,) = istore.batches()
    assert x["status"] == "mined" and istore.unsettled() == []
    restart(node, ledger, kill=True)  # SIGKILL: X's block is gone
    assert ledger.intervals.position_of(buyer.address, meter.address)["last_interval"] == 0

    boundary(istore, n + 1, read(4_010, 30), read(4_013, 20))
    second = fill(istore, buyer.address, n + 1, order, 3)
    monkeypatch.setattr(chainside, "FORGOTTEN_AFTER_S", 0.0)  # the 45 s passed

    def resend_x() -> None:
        # A's transaction manager sends X's bytes again (a later send of its waits behind
        # the gap the rewind left): X is mined after all.
        record = a.ledger.txm.record(x["tx_hash"])
        assert a.ledger.txm.send_forgotten(record)
        a.ledger.txm.wait(record)

    if resent == "while B sends":
        settle = b.ledger.intervals.settle_async

        def after_x(batch, sender=None):
            if ledger.intervals.position_of(buyer.address, meter.address)["last_interval"] == 0:
                resend_x()
            return settle(batch, sender)

        monkeypatch.setattr(b.ledger.intervals, "settle_async", after_x)
    with caplog.at_level(logging.WARNING):
        b.step(n + 1)  # the lease is B's: X reopened, its fill unsettled
        assert batch(istore, x["id"])["status"] == "sent"
        assert not b._follow()  # unknown to the node, and B cannot send it: failed
        assert batch(istore, x["id"])["status"] == "failed"
        if resent == "before B builds":
            resend_x()
        for through in (n + 1, n + 2, n + 3):
            b.step(through)
            wait_for(lambda: followed(b), timeout=30, what="B's batches mined")
    if resent == "while B sends":
        assert "was used elsewhere" in caplog.text  # Y went under the nonce after X's
    events = ledger.intervals.events(0)
    settled = [(e["args"]["fromInterval"], e["args"]["toInterval"], e["args"]["wh"])
               for e in events if e["event"] == "PositionSettled"]
    # n by X (A's bytes), then n+1 on its own: every billed Wh settled once.
    assert settled == [(n, n, 10), (n + 1, n + 1, 3)]
    assert istore.unsettled() == []
    by_id = {f["id"]: f["settled_batch"] for f in istore.fills(n) + istore.fills(n + 1)}
    assert by_id[first] == x["id"] and by_id[second] not in (None, x["id"])
    assert batch(istore, x["id"])["status"] == "mined"  # its own receipt settled n
    assert "settled on chain by no batch kept here" not in caplog.text
