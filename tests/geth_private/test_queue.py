"""TxManager.queue: a request's send is signed with its hash at once and never waits for the node,
not even for another send of the same account that is inside the node's RPC.

The chain is the real embedded one; what holds the other send inside eth_sendRawTransaction is
a thin web3 middleware parking that one thread on a threading.Event.
"""

from __future__ import annotations

import threading

from eth_account import Account
from web3.middleware.base import Web3Middleware

ETH = 10**18
ANSWER_S = 30.0  # how long queue() may take before the test calls it stuck


def test_queue_answers_while_a_send_of_the_account_is_inside_the_rpc(txm, chain):
    sender = Account.create()
    txm.transact(chain.faucet(), {"to": sender.address, "value": ETH, "gas": 21000}, "fund")
    entered, release = threading.Event(), threading.Event()
    held_thread = "held-send"

    class Hold(Web3Middleware):
        def wrap_make_request(self, make_request):
            def middleware(method, params):
                if method == "eth_sendRawTransaction" \
                        and threading.current_thread().name == held_thread:
                    entered.set()
                    release.wait(120)
                return make_request(method, params)

            return middleware

    chain.w3.middleware_onion.inject(Hold, name="hold", layer=0)
    other = Account.create().address
    sent: dict = {}
    sending = threading.Thread(name=held_thread, daemon=True, target=lambda: sent.update(
        record=txm.send(sender, {"to": other, "value": 1, "gas": 21000}, "held send")))
    sending.start()
    try:
        assert entered.wait(ANSWER_S), "the send never reached the node"
        queued: dict = {}
        asking = threading.Thread(daemon=True, target=lambda: queued.update(
            record=txm.queue(sender, {"to": other, "value": 2, "gas": 21000}, "queued")))
        asking.start()
        asking.join(ANSWER_S)
        assert not asking.is_alive(), "queue() waited for the other send's RPC"
        record = queued["record"]
        assert record.status == "queued" and record.tx_hash.startswith("0x")
        assert not release.is_set()
    finally:
        release.set()
        sending.join(ANSWER_S)
        chain.w3.middleware_onion.remove("hold")
    first = sent["record"]
    assert record.nonce == first.nonce + 1  # signed after it, so it goes after it
    txm.wait(first)
    txm.poll()  # the loop's pass hands the queued one to the node
    receipt = txm.wait(record)
    assert receipt["status"] == 1 and txm.record(record.tx_hash) is record
    assert chain.w3.eth.get_balance(other) == 3
