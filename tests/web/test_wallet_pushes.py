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
