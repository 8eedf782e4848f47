"""A rewind while the lease holder adopts a batch failed as forgotten and mined after all
(review4 of c1992db): Batching._adopt reads the chain's settled state (Positions.build), then
each holding batch's receipt (_settled_by). anvil SIGKILLed between the two and back from a
dump before the batch's second mining: no receipt proves it, so the newest batch holding the
fills is taken, and one with a transaction is left 'failed' (not marked mined) while its
fills are marked settled by it. reopen_forgotten looks only at mined batches, so nothing
unsettles them again: the store holds them settled, the chain never paid them; and the later
fills' position, built in the same boundary from the chain state read before the kill, is
settled after the rewind, so those fills' interval can never be settled again.

The same real anvil, SIGKILL, contracts, two workers' transaction managers and store as
test_intervals_rewind_lease.py (its fixture and helpers).
"""

from __future__ import annotations

from marketplace.intervals import chainside
from tests.common import wait_for
from tests.marketplace.test_intervals_rewind_lease import (  # noqa: F401 - town: a fixture
    batch,
    boundary,
    fill,
    followed,
    restart,
    second_order,
    town,
)


def test_fills_adopted_while_the_chain_goes_back_are_not_left_settled_unpaid(
        town, monkeypatch):  # noqa: F811 - the fixture imported above
    node, community, istore, a, b = town
    ledger, buyer, meter = community.ledger, community.buyer, community.buyer_meter
    read, order, n = second_order(community, istore)
    first = fill(istore, buyer.address, n, order, 10)
    restart(node, ledger, kill=False)  # its state file: the dump both crashes go back to

    a.step(n)
    wait_for(lambda: followed(a), timeout=30, what="A's batch X mined")
    (x,) = istore.batches()
    restart(node, ledger, kill=True)  # SIGKILL: X's block is gone
    boundary(istore, n + 1, read(4_010, 30), read(4_013, 20))
    fill(istore, buyer.address, n + 1, order, 3)
    monkeypatch.setattr(chainside, "FORGOTTEN_AFTER_S", 0.0)  # the 45 s passed
    b.step(n + 1)  # the lease is B's: X reopened, then failed as forgotten
    assert not b._follow() and batch(istore, x["id"])["status"] == "failed"
    record = a.ledger.txm.record(x["tx_hash"])  # A sends X's bytes again: mined after all
    assert a.ledger.txm.send_forgotten(record)
    a.ledger.txm.wait(record)
    assert ledger.intervals.position_of(buyer.address, meter.address)["last_interval"] == n

    settled_by, killed = b._settled_by, []

    def chain_goes_back(held, key):
        if not killed:  # anvil SIGKILLed after build read the chain's state, back to the dump
            killed.append(restart(node, ledger, kill=True))
        return settled_by(held, key)

    b._settled_by = chain_goes_back
    for through in (n + 1, n + 2, n + 3):
        b.step(through)
        wait_for(lambda: followed(b), timeout=30, what="B's batches mined")
    assert killed
    events = ledger.intervals.events(0)
    paid = [(e["args"]["fromInterval"], e["args"]["toInterval"], e["args"]["wh"])
            for e in events if e["event"] == "PositionSettled"]
    (row,) = [f for f in istore.fills(n) if f["id"] == first]
    assert row["settled_batch"] is None or any(lo <= n <= hi for lo, hi, _ in paid), (
        f"fill of {n} settled here by batch {row['settled_batch']} "
        f"({batch(istore, row['settled_batch'])['status']}); the chain settled {paid}")
