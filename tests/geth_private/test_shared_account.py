"""Two processes' transaction managers sending from one account: a nonce the other used is
taken again from the node, never left as a gap or a stuck refusal."""

from __future__ import annotations

from eth_account import Account

from geth_private import TxManager, backend_from_uri

ETH = 10**18


def test_a_second_manager_on_the_same_account_catches_up_with_the_node():
    chain = backend_from_uri("embedded://")
    chain.start()
    try:
        faucet = chain.faucet()
        first, second = TxManager(chain), TxManager(chain)  # two portal workers
        to = Account.create().address
        second.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "second sends first")
        for n in range(3):  # the second's cached nonce falls behind
            first.transact(faucet, {"to": to, "value": 1, "gas": 21000}, f"first {n}")
        receipt = second.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "second again")
        assert receipt["status"] == 1
        assert chain.w3.eth.get_balance(to) == 5
        # … and it goes on from the node's count, with no gap.
        receipt = second.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "and again")
        assert receipt["status"] == 1 and chain.w3.eth.get_balance(to) == 6
    finally:
        chain.stop()


def test_a_nonce_the_other_manager_takes_twice_is_taken_again_from_the_node():
    """Two workers starting together, each enrolling meters with the operator's key: the
    nonce one re-signed with after a refusal was taken by the other again before it was
    sent, and the second refusal lost the enrollment ("nonce 7 was used elsewhere; sending
    with 8", then "nonce too low": a chaos day's consumer never seated)."""
    chain = backend_from_uri("embedded://")
    chain.start()
    try:
        faucet = chain.faucet()
        first, second = TxManager(chain), TxManager(chain)
        to = Account.create().address
        second.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "second sends first")
        first.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "first takes one")
        renonce = second._renonce
        raced = []

        def and_first_again(account, params, label):
            again = renonce(account, params, label)
            if not raced:  # the other worker sends between the count and the send
                raced.append(first.transact(faucet, {"to": to, "value": 1, "gas": 21000},
                                            "first again"))
            return again

        second._renonce = and_first_again
        receipt = second.transact(faucet, {"to": to, "value": 1, "gas": 21000}, "second again")
        assert raced and receipt["status"] == 1
        assert chain.w3.eth.get_balance(to) == 4
    finally:
        chain.stop()
