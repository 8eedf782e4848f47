"""Two settle batches forgotten by one rewind and mined after all (review4 of c1992db): anvil
goes back past two of worker A's batches (a dump every few seconds, intervals of 1.5 s at
x600), the lease holder B reopens both and fails them as forgotten, A sends both again with
their own bytes. The chain now holds the buyer settled through the later one's interval,
each fill by a different batch; Batching._adopt looks for one batch holding every fill up to
the chain's last settled interval, finds none, and the fills stay unsettled here for good
("settled on chain by no batch kept here" at every boundary).

The same real anvil, SIGKILL, contracts, two workers' transaction managers and store as
test_intervals_rewind_lease.py (its fixture and helpers).
"""

from __future__ import annotations

import logging

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


def test_two_batches_failed_as_forgotten_and_mined_after_all_are_adopted(
        town, monkeypatch, caplog):  # noqa: F811 - the fixture imported above
    node, community, istore, a, b = town
    ledger, buyer, meter = community.ledger, community.buyer, community.buyer_meter
    read, order, n = second_order(community, istore)
    fill(istore, buyer.address, n, order, 10)
    restart(node, ledger, kill=False)  # its state file: the dump the crash goes back to

    a.step(n)  # A holds the lease: X1 over n, then X2 over n+1, both mined
    wait_for(lambda: followed(a), timeout=30, what="A's batch X1 mined")
    boundary(istore, n + 1, read(4_010, 30), read(4_013, 20))
    fill(istore, buyer.address, n + 1, order, 3)
    a.step(n + 1)
    wait_for(lambda: followed(a), timeout=30, what="A's batch X2 mined")
    x1, x2 = istore.batches()
    assert (x1["status"], x2["status"], istore.unsettled()) == ("mined", "mined", [])
    restart(node, ledger, kill=True)  # SIGKILL: both blocks gone
    assert ledger.intervals.position_of(buyer.address, meter.address)["last_interval"] == 0

    monkeypatch.setattr(chainside, "FORGOTTEN_AFTER_S", 0.0)  # the 45 s passed
    with caplog.at_level(logging.WARNING):
        b.step(n + 1)  # the lease is B's now: X2 and X1 reopened, their fills unsettled
        assert {batch(istore, x["id"])["status"] for x in (x1, x2)} == {"sent"}
        assert not b._follow()  # unknown to the node, and B cannot send them: failed
        assert {batch(istore, x["id"])["status"] for x in (x1, x2)} == {"failed"}
        for x in (x1, x2):  # A sends its bytes again: both mined after all
            record = a.ledger.txm.record(x["tx_hash"])
            assert a.ledger.txm.send_forgotten(record)
            a.ledger.txm.wait(record)
        assert ledger.intervals.position_of(buyer.address,
                                            meter.address)["last_interval"] == n + 1
        for through in (n + 1, n + 2):
            b.step(through)
            wait_for(lambda: followed(b), timeout=30, what="B's batches mined")
    assert "settled on chain by no batch kept here" not in caplog.text
    assert istore.unsettled() == []  # both fills settled, each by the batch that holds it
