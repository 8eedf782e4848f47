"""Two portal processes, one market: PostgreSQL for the store, Redis between the Socket.IO
servers, one anvil for the chain. A bid through one worker reaches the other's browsers; an
auction with bids through both closes once and opens one deal on chain."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from web3 import Web3

from contracts.bindings import contract
from firmware_bridge.remote import socketio_client
from geth_private.anvil import find_anvil
from gridbid_client.client import Client, ClientError
from tests.common import PortalWorker, portal_login, sign_bid_as, wait_for

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a shared chain)")


class Worker(PortalWorker):
    """One `gridbid run` process (tests.common.PortalWorker) and the browsers opened on it."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], chain: str, data: Path):
        super().__init__(name, tmp, env, chain, data)
        self.clients: list = []

    def login(self, name: str) -> Client:
        """A demo account signed in here with its own key (SIWE), as its page does."""
        return portal_login(self.url, name, self.data)

    def watch(self, session: Client) -> dict[str, list]:
        """Open /market as a browser of this session; the events it receives, by name."""
        seen: dict[str, list] = defaultdict(list)
        client = socketio_client()
        for event in ("listing_created", "bid_placed", "listing_closed", "deal_updated"):
            client.on(event, lambda data, event=event: seen[event].append(data),
                      namespace="/market")
        cookies = session.transport.session.cookies
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        client.connect(self.url, namespaces=["/market"], headers={"Cookie": cookie},
                       wait_timeout=10)
        self.clients.append(client)
        return seen

    def stop(self) -> None:
        """Close its browsers, then the process."""
        for client in self.clients:
            client.disconnect()
        super().stop()


@pytest.fixture
def workers(tmp_path, chain, postgres_url, redis_url):
    """Workers A and B on one data directory, one PostgreSQL database, one Redis."""
    env = {
        **os.environ,
        "GRIDBID_STORE_URL": postgres_url,
        "GRIDBID_MESSAGE_QUEUE": redis_url,
        "GRIDBID_SECRET_KEY": "shared-by-the-workers",
        "GRIDBID_SCRYPT_N": "1024",
        "GRIDBID_EMULATOR_SPEED": "600",
        "GRIDBID_TICK_S": "0.1",
        "GRIDBID_EVENT_POLL_S": "0.2",
        "GRIDBID_SOFT_CLOSE_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    data = tmp_path / "var"
    url = f"http://127.0.0.1:{chain.port}"
    started = [Worker(name, tmp_path, env, url, data) for name in ("a", "b")]
    try:
        for worker in started:
            wait_for(worker.ready, timeout=60, what=f"worker {worker.name} to serve")
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_two_workers_share_one_market(workers, chain, tmp_path):
    a, b = workers
    alice, carol, bob = a.login("alice"), a.login("carol"), b.login("bob")
    on_a, on_b = a.watch(carol), b.watch(bob)

    for session in (bob, carol):
        assert session.deposit("1")["status"] == "queued"
    wait_for(lambda: alice.wallet()["unlisted_wh"] >= 20,
             timeout=30, what="alice's tokens to be minted")
    for session in (bob, carol):
        wait_for(lambda s=session: int(s.wallet()["escrow_free_wei"]) > 0,
                 what="the deposits to land")

    # A listing made through A is on B's pages; a bid through B is on A's.
    first = alice.create_listing(20, 1000, 10)
    lid = first["id"]
    wait_for(lambda: [e["id"] for e in on_b["listing_created"]] == [lid],
             what="B's browser to see the listing made through A")
    sent = time.monotonic()
    assert bob.bid(lid, 2000)["highest_bid_wei"] == "2000"
    wait_for(lambda: any(e["highest_bid_wei"] == "2000" for e in on_a["bid_placed"]),
             what="A's browser to see the bid placed through B")
    print(f"bid through B seen by a client of A after {1000 * (time.monotonic() - sent):.0f} ms")
    assert carol.bid(lid, 3000)["highest_bid_wei"] == "3000"

    # The same bid through both workers at once: the rule "highest + increment" holds.
    replies = {}
    start = threading.Barrier(2)

    def bid(name, session):
        # Each signs its bid first; the two signed bids then race to their workers.
        terms = session.post(f"/api/listings/{lid}/bids/terms", {"price_wei": "5000"})
        signed, signature = sign_bid_as(session.account, terms)
        start.wait()
        try:
            replies[name] = session.post(f"/api/listings/{lid}/bids",
                                         {"bid": signed, "signature": signature})
        except ClientError as err:
            replies[name] = err

    racers = [threading.Thread(target=bid, args=args) for args in (("bob", bob), ("carol", carol))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    taken = [name for name, r in replies.items() if not isinstance(r, ClientError)]
    assert len(taken) == 1 and len(replies) == 2, replies
    winner = taken[0]
    listing = a.login("alice").listing(lid)
    assert (listing["bid_count"], listing["highest_bid_wei"]) == (3, "5000")

    # Both workers see the deadline; the auction closes once and one deal opens on chain.
    def active():
        deals = [d for d in alice.deals() if d["listing_id"] == lid]
        return deals if deals and deals[0]["status"] == "active" else None

    deals = wait_for(active, timeout=40, what="the deal to open on chain")
    assert len(deals) == 1 and deals[0]["buyer_name"] == winner
    session = {"bob": bob, "carol": carol}[winner]
    assert [d["id"] for d in session.deals() if d["listing_id"] == lid] == [deals[0]["id"]]
    assert bob.listing(lid)["status"] == "sold"
    closes = [line for w in workers for line in w.log.read_text().splitlines()
              if re.search(rf"auction {lid} closed by worker", line)]
    assert len(closes) == 1, closes
    wait_for(lambda: [e["id"] for e in on_a["listing_closed"]] == [lid]
             and [e["id"] for e in on_b["listing_closed"]] == [lid],
             what="both workers' browsers to see the close, once")

    book = json.loads((tmp_path / "var" / "contracts.json").read_text())
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{chain.port}"))
    escrow = contract(w3, "EnergyEscrow", book["EnergyEscrow"])
    assert escrow.functions.dealCount().call() == 1
    assert escrow.functions.dealOfOffer(_hash(first)).call() == deals[0]["chain_deal_id"]
    opened = escrow.events.DealOpened().get_logs(from_block=0)
    assert len(opened) == 1

    # The settling worker dies (kill -9): the other takes the lease over, then mints, opens
    # the next deal and sends from the operator's account with the nonces the node counts.
    leader = next(w for w in workers if "takes settlement" in w.log.read_text())
    survivor = b if leader is a else a
    leader.process.kill()
    leader.process.wait(10)
    # The next deal's buyer is the one who lost above: the winner's deal is still under way,
    # and a buyer's deals deliver one after another (its meter counts them all).
    loser = "carol" if winner == "bob" else "bob"
    seller, buyer = survivor.login("alice"), survivor.login(loser)
    wait_for(lambda: seller.wallet()["unlisted_wh"] >= 10, timeout=30,
             what="alice to have tokens to list again")
    second = seller.create_listing(10, 1000, 10)
    created = second["id"]
    assert buyer.bid(created, 2000)["highest_bid_wei"] == "2000"

    def reopened():
        found = [d for d in seller.deals() if d["listing_id"] == created]
        return found if found and found[0]["status"] == "active" else None

    wait_for(reopened, timeout=40, what="the surviving worker to open the next deal")
    assert "takes settlement" in survivor.log.read_text()
    assert escrow.functions.dealCount().call() == 2
    assert escrow.functions.dealOfOffer(_hash(second)).call() == reopened()[0]["chain_deal_id"]


def _hash(listing):
    """The listing's offer hash as the escrow keys deals by it."""
    return bytes.fromhex(listing["offer_hash"].removeprefix("0x"))
