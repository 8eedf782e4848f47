"""A queued transaction's answer says what was true when it was accepted, even when the
transactions loop sends (and the node mines) it before the response is serialised."""

from __future__ import annotations

import time

from geth_private import TxStatus
from tests.common import signed_raw


def _loop_gets_in_first(txm, sender):
    """Run the transactions loop's poll inside the request, right as the record is queued:
    the loop thread winning the race, deterministically (a listener hook, no timing)."""
    def listener(record):
        if record.sender == sender and record.status == TxStatus.QUEUED:
            # Sent here (embedded chain, automine: mined as it is sent), or by the runtime's
            # own loop thread if its poll took the outbox first: either way not queued once
            # the request goes on.
            deadline = time.monotonic() + 10
            while record.status == TxStatus.QUEUED and time.monotonic() < deadline:
                txm.poll()
                time.sleep(0.01)
    txm.subscribe(listener)


def test_a_deposit_sent_before_its_answer_still_answers_queued(app, runtime, login):
    bob = login("bob")
    address = bob.get("/api/wallet").get_json()["address"]
    txm = runtime.ledger.txm
    _loop_gets_in_first(txm, address)
    answer = bob.post("/api/tx", json={"raw": signed_raw(bob.signer, "deposit", amount_eth="1")})
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status"] == "queued" and body["block"] is None
    # The loop did get in first: the record has moved on since the answer was taken.
    assert txm.record(body["tx_hash"]).status in (TxStatus.PENDING, TxStatus.MINED)
    assert bob.get(f"/api/tx/{body['tx_hash']}").get_json()["status"] != "queued"
    assert bob.signer.wait_tx(body["tx_hash"])["block"] is not None


def test_a_queued_send_answers_queued_after_the_poll_sent_it(runtime):
    """TxManager.queue (a listing's permit, a consent): same race, same answer."""
    ledger = runtime.ledger
    txm = ledger.txm
    operator = ledger.operator
    _loop_gets_in_first(txm, operator.address)
    record = txm.queue(operator, {"to": operator.address, "value": 0, "gas": 21000}, "noop")
    assert record.status == TxStatus.MINED
    assert record.as_accepted()["status"] == "queued"
    assert "accepted" not in record.public()
