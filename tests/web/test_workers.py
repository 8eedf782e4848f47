"""Two portal processes, one market: PostgreSQL for the store, Redis between the Socket.IO
servers, one anvil for the chain. A bid through one worker reaches the other's browsers; an
auction with bids through both closes once and opens one deal on chain."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests
import socketio
from web3 import Web3

from contracts.bindings import contract
from geth_private import backend_from_uri
from geth_private.anvil import find_anvil, free_port
from tests.common import portal_login, wait_for

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a shared chain)")

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One `gridbid run` process on a free loopback port, its log in a file."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], chain: str, data: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "run", "--port", str(self.port), "--chain", chain,
             "--data-dir", str(data)],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/login", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def login(self, name: str) -> requests.Session:
        """A session logged in as a demo account, sending the CSRF token as the pages do."""
        return portal_login(self.url, name)

    def watch(self, session: requests.Session) -> dict[str, list]:
        """Open /market as a browser of this session; the events it receives, by name."""
        seen: dict[str, list] = defaultdict(list)
        client = socketio.Client()
        for event in ("listing_created", "bid_placed", "listing_closed", "deal_updated"):
            client.on(event, lambda data, event=event: seen[event].append(data),
                      namespace="/market")
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        client.connect(self.url, namespaces=["/market"], headers={"Cookie": cookie},
                       wait_timeout=10)
        self.clients.append(client)
        return seen

    clients: list

    def stop(self) -> None:
        for client in self.clients:
            client.disconnect()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def chain(tmp_path):
    """One anvil both workers use."""
    node = backend_from_uri("anvil://", str(tmp_path / "chain"))
    node.start()
    yield node
    node.stop()


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
    for worker in started:
        worker.clients = []
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

    for session, worker in ((bob, b), (carol, a)):
        reply = session.post(f"{worker.url}/api/escrow/deposit", json={"amount_eth": "1"})
        assert reply.status_code == 202, reply.text
    wait_for(lambda: alice.get(f"{a.url}/api/wallet").json()["unlisted_wh"] >= 20,
             timeout=30, what="alice's tokens to be minted")
    for session, worker in ((bob, b), (carol, a)):
        wait_for(lambda s=session, w=worker: int(s.get(f"{w.url}/api/wallet").json()
                                                  ["escrow_free_wei"]) > 0,
                 what="the deposits to land")

    # A listing made through A is on B's pages; a bid through B is on A's.
    created = alice.post(f"{a.url}/api/listings",
                         json={"energy_wh": 20, "start_price_wei": "1000", "duration_s": 10})
    assert created.status_code == 201, created.text
    lid = created.json()["id"]
    wait_for(lambda: [e["id"] for e in on_b["listing_created"]] == [lid],
             what="B's browser to see the listing made through A")
    sent = time.monotonic()
    assert bob.post(f"{b.url}/api/listings/{lid}/bids", json={"price_wei": "2000"}).ok
    wait_for(lambda: any(e["highest_bid_wei"] == "2000" for e in on_a["bid_placed"]),
             what="A's browser to see the bid placed through B")
    print(f"bid through B seen by a client of A after {1000 * (time.monotonic() - sent):.0f} ms")
    assert carol.post(f"{a.url}/api/listings/{lid}/bids", json={"price_wei": "3000"}).ok

    # The same bid through both workers at once: the rule "highest + increment" holds.
    replies = {}
    start = threading.Barrier(2)

    def bid(name, session, worker):
        start.wait()
        replies[name] = session.post(f"{worker.url}/api/listings/{lid}/bids",
                                     json={"price_wei": "5000"})

    racers = [threading.Thread(target=bid, args=args)
              for args in (("bob", bob, b), ("carol", carol, a))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    assert [r.ok for r in replies.values()].count(True) == 1, {
        k: r.text for k, r in replies.items()}
    winner = next(name for name, r in replies.items() if r.ok)
    listing = a.login("alice").get(f"{a.url}/api/listings/{lid}").json()
    assert (listing["bid_count"], listing["highest_bid_wei"]) == (3, "5000")

    # Both workers see the deadline; the auction closes once and one deal opens on chain.
    def active():
        deals = alice.get(f"{a.url}/api/deals").json()["deals"]
        deals = [d for d in deals if d["listing_id"] == lid]
        return deals if deals and deals[0]["status"] == "active" else None

    deals = wait_for(active, timeout=40, what="the deal to open on chain")
    assert len(deals) == 1 and deals[0]["buyer_name"] == winner
    session, worker = {"bob": (bob, b), "carol": (carol, a)}[winner]
    assert [d["id"] for d in session.get(f"{worker.url}/api/deals").json()["deals"]
            if d["listing_id"] == lid] == [deals[0]["id"]]
    assert bob.get(f"{b.url}/api/listings/{lid}").json()["status"] == "sold"
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
    assert escrow.functions.dealOfListing(lid).call() == deals[0]["chain_deal_id"]
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
    created = wait_for(
        lambda: seller.post(f"{survivor.url}/api/listings", json={
            "energy_wh": 10, "start_price_wei": "1000", "duration_s": 10}).json().get("id"),
        timeout=30, what="alice to have tokens to list again")
    assert buyer.post(f"{survivor.url}/api/listings/{created}/bids",
                      json={"price_wei": "2000"}).ok

    def reopened():
        found = [d for d in seller.get(f"{survivor.url}/api/deals").json()["deals"]
                 if d["listing_id"] == created]
        return found if found and found[0]["status"] == "active" else None

    wait_for(reopened, timeout=40, what="the surviving worker to open the next deal")
    assert "takes settlement" in survivor.log.read_text()
    assert escrow.functions.dealCount().call() == 2
    assert escrow.functions.dealOfListing(created).call() == reopened()[0]["chain_deal_id"]
