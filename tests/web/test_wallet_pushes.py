"""Which hub news wakes a pass over the open wallets (web.pushers.WalletPusher): each pass reads
every open wallet's balances from the chain (Wallets.summary, ~8 calls a wallet), so news that
moves no wallet must not wake one. A bid moved none, yet woke a pass each: while bids came, the
pusher ran every 50 ms for every wallet page open, in the process answering the bids."""

from __future__ import annotations

from web.pushers import WalletPusher


def test_a_bid_wakes_no_pass_over_the_wallets_and_a_listing_does(app, runtime):
    pusher = WalletPusher(runtime)  # its own: the portal's is woken by the runtime's loops too
    listing = {"id": 1, "seller": runtime.accounts.address_of("alice"), "energy_wh": 10}
    with app.app_context():
        pusher.on_hub("bid_placed", {**listing, "highest_bid_wei": "7"})
        assert not pusher.wake.is_set()
        # A listing moves its seller's listed Wh; a deal, a chain event, an interval: balances.
        for topic in ("listing_created", "listing_closed", "transaction", "interval"):
            pusher.wake.clear()
            pusher.on_hub(topic, {**listing, "n": 5, "start": 0.0, "end": 900.0,
                                  "next_at": 900.0, "price_wei": None})
            assert pusher.wake.is_set(), topic


def test_a_wallet_s_balances_are_read_from_the_chain_once_a_block(app, runtime, monkeypatch):
    """The pusher reads every open wallet each second; its balances change only with a block,
    so they are read again only when the head changed (~13 ms of CPU a wallet before, read
    afresh every pass). A block mined in between (the demo's boards mint) is read again."""
    from marketplace.wallet import Wallets

    wallets = Wallets(runtime.market)
    ledger = wallets.ledger
    alice = runtime.accounts.address_of("alice")
    reads = []
    real = ledger.eth_balance
    monkeypatch.setattr(ledger, "eth_balance", lambda a: reads.append(a) or real(a))

    def head():
        block = ledger.w3.eth.get_block("latest")
        return block["number"], bytes(block["hash"])

    for _ in range(50):  # a pair of summaries with no block between them
        before, count = head(), len(reads)
        first, second = wallets.summary(alice), wallets.summary(alice)
        if head() == before:
            assert len(reads) - count <= 1 and first["eth_wei"] == second["eth_wei"]
            break
    else:
        raise AssertionError("a block came between every pair of summaries")
    count = len(reads)
    ledger.fund(alice, 1)  # a transfer, mined: a new head
    assert int(wallets.summary(alice)["eth_wei"]) == real(alice)
    assert len(reads) == count + 1  # read again, once
