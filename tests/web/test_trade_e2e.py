"""The walking skeleton's trade, end to end through the HTTP API and Socket.IO."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from gridbid_client.client import ClientError
from tests.common import csrf_client, wait_for
from web.extensions import socketio

ETH = 10**18
PRICE_BOB = 10**16  # 0.01 ETH per kWh
PRICE_CAROL = 2 * 10**16


def events(client, name):
    return [e["args"][0] for e in client.get_received("/market") if e["name"] == name]


# A 30 W load (5 Wh a second at 600x) keeps the 40 Wh deal running while its relays are checked;
# the default 240 W spent it in one second, too soon for a slow machine.
@pytest.mark.parametrize("app", [{"CHAIN_URI": uri, "LOAD_W": 30} for uri in
                                 ("embedded://", "anvil://")], indirect=True,
                         ids=["embedded", "anvil"])
def test_one_trade_end_to_end(app, runtime, login, clock):
    ledger, bridge = runtime.ledger, runtime.bridge
    demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
    alice_addr, bob_addr, carol_addr = demo["alice"], demo["bob"], demo["carol"]

    # 1. A sign-in signed by another key is refused with a clear message; alice's own key
    #    (it signs here, in the test, as her page would) opens her session.
    stranger = csrf_client(app)
    text = stranger.post("/api/login/message", json={"address": alice_addr}).get_json()["message"]
    forged = Account.create().sign_message(encode_defunct(text=text)).signature
    refused = stranger.post("/api/login", json={"message": text,
                                                "signature": "0x" + bytes(forged).hex()})
    assert refused.status_code == 401
    assert f"not by {alice_addr}" in refused.get_json()["error"]
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    wallet = alice.get("/api/wallet").get_json()
    assert wallet["address"] == alice_addr and wallet["role"] == "producer"
    assert {"tokens_wh", "eth_wei", "generation", "pending"} <= set(wallet)

    watchers = {
        name: socketio.test_client(app, namespace="/market", flask_test_client=c)
        for name, c in (("alice", alice), ("bob", bob), ("carol", carol))
    }
    assert all(w.is_connected("/market") for w in watchers.values())

    # 2. The emulated PV charges alice's battery; her meter's count is minted as tokens.
    wait_for(lambda: ledger.token_balance(alice_addr) >= 60, what="alice's tokens to be minted")
    generation = alice.get("/api/wallet").get_json()["generation"]
    assert generation["online"] and generation["power_w"] > 0 and generation["energy_in_kwh"] > 0
    supply_before = ledger.total_supply()

    # 3. alice lists 40 Wh (signing the escrow's approval herself); every browser sees the card.
    listing = alice.signer.create_listing(40, PRICE_BOB, 30)
    for watcher in watchers.values():
        assert [e["id"] for e in events(watcher, "listing_created")] == [listing["id"]]

    # 4. bob and carol deposit and bid; carol outbids bob; every browser sees the new highest.
    for client in (bob, carol):
        assert client.signer.deposit("1")["status"] == "queued"  # signed by its owner
    wait_for(lambda: ledger.escrow_free(bob_addr) == ETH and ledger.escrow_free(carol_addr) == ETH,
             what="deposits to be mined")
    with pytest.raises(ClientError) as low:
        bob.signer.bid(listing["id"], PRICE_BOB - 1)
    assert low.value.status == 400 and "start bid" in low.value.message
    assert bob.signer.bid(listing["id"], PRICE_BOB)["highest_bidder"] == bob_addr
    assert carol.signer.bid(listing["id"], PRICE_CAROL)["highest_bidder"] == carol_addr
    for watcher in watchers.values():
        seen = events(watcher, "bid_placed")
        assert [e["highest_bidder"] for e in seen] == [bob_addr, carol_addr]
    with pytest.raises(ClientError) as own:
        alice.signer.bid(listing["id"], PRICE_CAROL * 2)
    assert own.value.status == 403

    # 5. At the deadline carol wins: a deal opens on the escrow and both relays switch on.
    clock.advance(31)
    deal = wait_for(lambda: _active_deal(carol), what="the deal to open")
    assert deal["buyer"] == carol_addr and deal["seller"] == alice_addr
    assert deal["price_wei"] == str(PRICE_CAROL) and deal["energy_wh"] == 40
    onchain = ledger.chain_deal(deal["chain_deal_id"])
    assert (onchain["buyer"], onchain["seller"]) == (carol_addr, alice_addr)
    assert onchain["priceWeiPerKWh"] == PRICE_CAROL and onchain["energyWh"] == 40
    assert bridge.read("pv-alice").relays[0] and bridge.read("load-carol").relays[0]
    assert not bridge.read("load-bob").relays[0]
    # The buyer's board holds the energy bought as a local budget (prepaid-meter behaviour).
    assert 0 < bridge.read("load-carol").budgets[0] <= 40
    cost = PRICE_CAROL * 40 // 1000
    assert ledger.escrow_locked(carol_addr) == cost

    # 6. Delivery: carol's meter counts Wh, the escrow pays alice per step and burns tokens.
    alice_eth = ledger.eth_balance(alice_addr)
    wait_for(lambda: int(carol.get(f"/api/deals/{deal['id']}").get_json()["paid_wei"]) > 0,
             what="a paid delivery step")
    progress = carol.get(f"/api/deals/{deal['id']}").get_json()
    assert ledger.eth_balance(alice_addr) > alice_eth

    # Nobody else can close it: bob lost the auction.
    intruder = bob.post(f"/api/deals/{deal['id']}/close")
    assert intruder.status_code == 403
    assert "only the buyer or the seller" in intruder.get_json()["error"]

    # 7. carol presses Close connection (or the deal completes first): relays off, refund.
    try:
        carol.signer.close(deal["id"])  # her own signed closeDeal, sent after the last report
    except ClientError as err:
        assert err.status == 409, err  # it completed first
    final = wait_for(lambda: _closed(carol, deal["id"]), what="the deal to close")
    assert final["close_reason"] in ("closed by buyer", "completed")
    assert not bridge.read("pv-alice").relays[0] and not bridge.read("load-carol").relays[0]
    assert bridge.read("load-carol").budgets == (None,)
    paid, delivered = int(final["paid_wei"]), final["delivered_wh"]
    assert delivered >= progress["delivered_wh"] > 0
    assert paid == PRICE_CAROL * delivered // 1000
    assert int(final["refunded_wei"]) == cost - paid
    assert ledger.escrow_locked(carol_addr) == 0
    assert ledger.escrow_free(carol_addr) == ETH - paid
    assert ledger.escrow_free(bob_addr) == ETH  # the loser's deposit is untouched
    # Delivered tokens were burned, the rest returned to alice (minting goes on meanwhile).
    # Minting goes on, so supply and mints are read at one block.
    head = ledger.block_number()
    minted = sum(e["args"]["wh"] for e in _events(ledger, "EnergyMinted", head))
    assert ledger.token.functions.totalSupply().call(block_identifier=head) == minted - delivered
    assert ledger.total_supply() >= supply_before - delivered
    assert ledger.token_balance(ledger.escrow.address) == 0
    names = [name for name, _ in map(ledger.decode, ledger.log_poller().poll()) if name]
    assert names.count("DealOpened") == 1 and names.count("DealClosed") == 1
    assert "DeliveryReported" in names

    # The seller's wallet page shows it all live over /wallet.
    wallet_watch = socketio.test_client(app, namespace="/wallet", flask_test_client=alice)
    pushed = wait_for(lambda: [e for e in wallet_watch.get_received("/wallet")
                               if e["name"] == "wallet"], what="a wallet push")
    assert int(pushed[-1]["args"][0]["eth_wei"]) == ledger.eth_balance(alice_addr)


@pytest.mark.parametrize("app", ["embedded://", "anvil://"], indirect=True)
def test_mining_stop_start_and_send_ether(app, runtime, login):
    bob, admin = login("bob"), login("admin")  # block production is the operator's
    carol_addr = {a["name"]: a["address"] for a in runtime.demo_accounts}["carol"]
    before = runtime.ledger.eth_balance(carol_addr)

    stopped = admin.post("/api/admin/mining", json={"on": False}).get_json()
    assert stopped["on"] is False and stopped["can_mine"] is True
    sent = [bob.signer.send(carol_addr, "0.5") for _ in range(3)]  # signed by bob, queued
    # Each is queued, and the next transactions poll may hand it to the node before the answer
    # is written (pending): either way not mined, which the wallet and balance below show.
    assert {s["status"] for s in sent} <= {"queued", "pending"}
    pending = bob.get("/api/wallet").get_json()["pending"]
    assert [p["tx_hash"] for p in pending] == [s["tx_hash"] for s in sent]
    assert runtime.ledger.eth_balance(carol_addr) == before

    # One block by hand while mining stays stopped: something leaves the pending list.
    block = stopped["block"]
    mined = admin.post("/api/admin/mining/mine").get_json()
    assert mined["on"] is False and mined["block"] == block + 1
    wait_for(lambda: len(bob.get("/api/wallet").get_json()["pending"]) < 3, what="a mined tx")

    assert admin.post("/api/admin/mining", json={"on": True}).get_json()["on"] is True
    wait_for(lambda: not bob.get("/api/wallet").get_json()["pending"], what="pending to be mined")
    assert runtime.ledger.eth_balance(carol_addr) == before + 3 * ETH // 2

    period = admin.post("/api/admin/mining", json={"period": 1})
    if runtime.backend.has("block_period"):
        assert period.status_code == 200 and period.get_json()["block_period"] == 1
        head = runtime.ledger.block_number()
        wait_for(lambda: runtime.ledger.block_number() >= head + 2, what="interval blocks")
    else:
        assert period.status_code == 403 and "cannot change its block period" in (
            period.get_json()["error"])

    bad = bob.post("/api/tx/prepare", json={"action": "send", "to": carol_addr.lower()[:-1],
                                            "amount_eth": "1"})
    assert bad.status_code == 400 and "not an Ethereum address" in bad.get_json()["error"]


def _active_deal(client):
    deals = client.get("/api/deals").get_json()["deals"]
    return next((d for d in deals if d["status"] == "active"), None)


def _closed(client, deal_id):
    deal = client.get(f"/api/deals/{deal_id}").get_json()
    return deal if deal["status"] == "closed" else None


def _events(ledger, name, to_block="latest"):
    found = []
    logs = ledger.w3.eth.get_logs({"fromBlock": 0, "toBlock": to_block,
                                   "address": [ledger.token.address, ledger.escrow.address]})
    for raw in logs:
        decoded = ledger.decode(raw)
        if decoded and decoded[0] == name:
            found.append({"args": decoded[1]})
    return found
