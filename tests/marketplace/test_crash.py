"""kill -9 of the portal in the middle of an auction loses no acknowledged bid (a real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from web3 import Web3

from contracts import load_artifact
from geth_private.anvil import find_anvil, free_port
from marketplace.store import Store
from tests.common import portal_login, wait_for

pytestmark = pytest.mark.skipif(find_anvil() is None, reason="needs anvil (`npm ci`)")


class Portal:
    """`gridbid run` as a child process on a loopback port, with its own data directory."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRIDBID_SCRYPT_N": "1024", "GRIDBID_EMULATOR_SPEED": "600.0",
               "GRIDBID_TICK_S": "0.1", "GRIDBID_SOFT_CLOSE_S": "0"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "run", "--port", str(self.port),
             "--data-dir", str(data_dir), "--chain", "anvil://?interval=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        wait_for(self._up, timeout=60, what="the portal to answer")

    def _up(self):
        try:
            return requests.get(f"{self.url}/api/accounts", timeout=1).ok
        except requests.ConnectionError:
            return False

    def login(self, name):
        """A demo account signed in with its own key (SIWE): a gridbid_client.Client."""
        return portal_login(self.url, name, self.data_dir)


def test_kill_9_mid_auction_keeps_every_acknowledged_bid(tmp_path):
    """100 bids acknowledged, the portal killed, the deadline passing while it is down."""
    portal = Portal(tmp_path)
    try:
        alice, bob, carol = (portal.login(n) for n in ("alice", "bob", "carol"))
        wait_for(lambda: alice.wallet()["unlisted_wh"] >= 10, timeout=60, what="alice's tokens")
        for buyer in (bob, carol):
            assert buyer.deposit("1")["status"] == "queued"
        wait_for(lambda: all(int(b.wallet()["escrow_free_wei"]) for b in (bob, carol)),
                 what="the deposits")
        listing = alice.create_listing(10, 1000, 25)
        acknowledged = []
        price = 1000
        for i in range(100):
            buyer = (bob, carol)[i % 2]
            answer = buyer.bid(listing["id"], price)  # signed by the buyer; raises if refused
            assert answer["highest_bid_wei"] == str(price)
            acknowledged.append(price)
            price = price * 102 // 100 + 1  # over the 1 % minimum increment
        os.kill(portal.process.pid, signal.SIGKILL)  # mid-auction, no chance to clean up
        portal.process.wait()
        # The deadline passes while the portal is down: the restart closes it with these bids.
        time.sleep(max(0.0, listing["deadline"] - time.time()) + 1)
    finally:
        if portal.process.poll() is None:
            portal.process.kill()

    portal = Portal(tmp_path)  # the same data directory: store, keystores, anvil state
    try:
        store = Store(tmp_path / "market.sqlite")
        assert [b["price"] for b in store.bids(listing["id"])] == acknowledged
        store.close()
        carol = portal.login("carol")  # the last and highest bid was carol's
        deal = wait_for(carol.deals, timeout=60, what="the auction to close after the restart")[0]
        assert int(deal["price_wei"]) == acknowledged[-1]
        wait_for(lambda: carol.deal(deal["id"])["status"] == "active", timeout=30,
                 what="the deal on chain")
        anvil_url = (tmp_path / "anvil.pid").read_text().split()[1]
        w3 = Web3(Web3.HTTPProvider(anvil_url))
        book = json.loads((tmp_path / "contracts.json").read_text())
        escrow = w3.eth.contract(address=book["EnergyEscrow"],
                                 abi=load_artifact("EnergyEscrow").abi)
        assert escrow.functions.dealCount().call() == 1
        offer = bytes.fromhex(listing["offer_hash"].removeprefix("0x"))
        assert escrow.functions.dealOfOffer(offer).call() == 1
    finally:
        portal.process.terminate()
        portal.process.wait(timeout=30)
