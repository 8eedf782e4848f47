"""A sent interval batch the chain forgot (issue 16, a chain restarted from an older state):
sent again when this worker signed it, else failed after a while so its positions go again;
never left 'sent' for ever. A started portal on the embedded chain; the batches' rows are
written by hand with a plain transfer's hash (what _follow reads of a batch is its tx)."""

from __future__ import annotations

from eth_account import Account

from marketplace.intervals import chainside


def sent_batch(runtime, tx_hash: str) -> int:
    istore = runtime.market.intervals.istore
    batch_id = istore.add_batch(1, {"positions": [], "mints": []}, None, 0.0)
    istore.update_batch(batch_id, status="sent", tx_hash=tx_hash)
    return batch_id


def status(runtime, batch_id: int) -> str:
    return next(b for b in runtime.market.intervals.istore.batches()
                if b["id"] == batch_id)["status"]


def test_a_batch_no_node_knows_fails_after_a_while_and_waits_till_then(runtime, monkeypatch):
    batching = runtime.market.intervals.batching
    batch_id = sent_batch(runtime, "0x" + "ab" * 32)  # a worker's that died before sending
    assert batching._follow() and status(runtime, batch_id) == "sent"  # waits at first
    monkeypatch.setattr(chainside, "FORGOTTEN_AFTER_S", 0.0)
    assert not batching._follow()  # nothing in flight any more: the next boundary builds
    assert status(runtime, batch_id) == "failed"


def test_a_mined_batch_the_chain_forgot_is_sent_again_with_its_own_bytes(runtime, monkeypatch):
    monkeypatch.setattr(chainside, "FORGOTTEN_AFTER_S", 0.0)  # it must not be failed
    txm, backend = runtime.txm, runtime.backend
    snapshot = backend.snapshot()  # the chain as an older state dump keeps it
    record = txm.send(backend.faucet(), {"to": Account.create().address, "value": 1,
                                         "gas": 21000}, "a batch")
    txm.wait(record)
    batch_id = sent_batch(runtime, record.tx_hash)
    backend.revert(snapshot)  # the node forgets the mined batch
    batching = runtime.market.intervals.batching
    assert batching._follow() and record.status == "pending"  # its bytes went again
    txm.wait(record)
    assert not batching._follow() and status(runtime, batch_id) == "mined"
    assert backend.w3.eth.get_transaction_receipt(record.tx_hash)["status"] == 1


def test_unknown_for_a_while_counts_only_while_this_worker_follows(runtime, monkeypatch):
    """A worker that lost the settlement lease and took it back: a batch it saw unknown to the
    node before (then mined, forgotten by a rewind and reopened meanwhile) was failed at its
    first look again, its FORGOTTEN_AFTER_S counted from the old sighting, while the worker
    that signed it could still send its bytes."""
    from marketplace.intervals import batching as batching_module

    clock = [1_000.0]
    monkeypatch.setattr(batching_module.time, "monotonic", lambda: clock[0])
    batching = runtime.market.intervals.batching
    batch_id = sent_batch(runtime, "0x" + "cd" * 32)
    assert batching._follow() and status(runtime, batch_id) == "sent"  # unknown: waits
    clock[0] += chainside.FORGOTTEN_AFTER_S + 10  # the lease another worker's meanwhile
    assert batching._follow() and status(runtime, batch_id) == "sent"  # counted from now
    for _ in range(int(chainside.FORGOTTEN_AFTER_S) - 1):  # followed every second now
        clock[0] += 1.0
        assert batching._follow() and status(runtime, batch_id) == "sent"
    clock[0] += 1.0
    assert not batching._follow() and status(runtime, batch_id) == "failed"
