"""Boards belong to a bridge, not to a portal worker: two workers on one PostgreSQL, Redis and
anvil, a bridge process (running the emulated boards) connected to the worker that does NOT
settle. The settling worker switches the relays and pays delivery through the message queue;
killed (SIGKILL) mid-delivery, the other takes the lease over, the relays stay on, and the
escrow pays every Wh the buyer's meter counted."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from contracts.bindings import contract
from geth_private.anvil import find_anvil
from geth_private.keystore import MachineKeys
from marketplace.contract_enums import CloseReason, DealStatus
from marketplace.store import Store
from tests.common import PortalWorker, seated_logins, wait_for
from web.registry import token_hash

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a shared chain)")

ROOT = Path(__file__).resolve().parents[2]
SPEED = 600  # the emulated boards' time factor (registered, and in their URIs)
# bob's load draws 10 W emulated (1.7 Wh a wall second): a 20 Wh deal lasts ~12 s, long
# enough to kill the settling worker in the middle of it.
BOARDS = [f"emulator://pv-alice?kind=producer&speed={SPEED}",
          f"emulator://load-bob?kind=consumer&load_w=10&speed={SPEED}",
          f"emulator://load-carol?kind=consumer&speed={SPEED}"]
ENERGY_WH = 20
PRICE = 10**15  # wei per kWh


def _register_site(store_url: str, site: Path) -> Path:
    """Register bridge "site" with the demo's three boards, as the admin's registration does
    (straight into the shared store, before the workers start: an admin login in a worker
    process would need its generated passphrase); its token file."""
    keys = MachineKeys(site / "meters", 2**10)  # the bridge finds these keys there
    boards = [{"board_id": b, "meter": keys.get(b).address, "time_factor": float(SPEED)}
              for b in ("pv-alice", "load-bob", "load-carol")]
    token = secrets.token_urlsafe(32)
    store = Store(store_url)
    try:
        assert store.add_bridge("site", token_hash(token), boards, time.time()) is None
    finally:
        store.close()
    path = site / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def town(tmp_path, chain, postgres_url, redis_url):
    """Workers A and B, the leader known; a bridge process connected to the other one."""
    token = _register_site(postgres_url, tmp_path / "site")
    env = {**os.environ, "GRIDBID_STORE_URL": postgres_url, "GRIDBID_MESSAGE_QUEUE": redis_url,
           "GRIDBID_SECRET_KEY": "shared-by-the-workers", "GRIDBID_SCRYPT_N": "1024",
           "GRIDBID_EMULATOR_SPEED": str(SPEED), "GRIDBID_TICK_S": "0.1",
           "GRIDBID_EVENT_POLL_S": "0.2", "GRIDBID_SOFT_CLOSE_S": "0",
           "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{chain.port}"
    workers = [PortalWorker(n, tmp_path, env, url, tmp_path / "var") for n in ("a", "b")]
    bridge = None
    try:
        for worker in workers:
            wait_for(worker.ready, timeout=60, what=f"worker {worker.name} to serve")
        leader = wait_for(lambda: next((w for w in workers if w.said("takes settlement")), None),
                          timeout=30, what="a worker to take the settlement lease")
        follower = next(w for w in workers if w is not leader)
        log = tmp_path / "bridge.log"
        portals = [arg for w in (follower, leader) for arg in ("--portal", w.url)]
        boards = [arg for uri in BOARDS for arg in ("--board", uri)]
        bridge = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "bridge", *boards, *portals, "--bridge-id", "site",
             "--token-file", str(token),
             "--data-dir", str(tmp_path / "site")],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        wait_for(lambda: follower.said("bridge site claimed boards"), timeout=30,
                 what=f"the bridge to connect to the follower: {log.read_text()[-2000:]}")
        yield leader, follower, chain
    finally:
        if bridge is not None:
            bridge.terminate()
            try:
                bridge.wait(10)
            except subprocess.TimeoutExpired:
                bridge.kill()
        for worker in workers:
            worker.stop()


def test_the_survivor_keeps_the_relays_on_and_pays_every_metered_wh(town, tmp_path):
    leader, follower, chain = town
    data = tmp_path / "var"

    alice, bob = seated_logins(follower.url, data)
    # alice's tokens are minted by the leader from readings her bridge gave the follower.
    wait_for(lambda: alice.wallet()["unlisted_wh"] >= ENERGY_WH, timeout=60,
             what="alice's tokens, minted from readings that crossed the message queue")
    assert bob.deposit("1")["status"] in ("queued", "pending")  # sent at once, or soon
    wait_for(lambda: int(bob.wallet()["escrow_free_wei"]) > 0, what="bob's deposit")
    listing = alice.create_listing(ENERGY_WH, PRICE, 10)
    assert bob.bid(listing["id"], PRICE)["highest_bid_wei"] == str(PRICE)

    def paying():
        deal = next((d for d in bob.deals() if d["listing_id"] == listing["id"]), None)
        return deal if deal and deal["status"] == "active" and int(deal["paid_wei"]) > 0 else None

    # The leader opened the deal, closed both relays and paid a first step: its commands
    # reached the bridge through Redis and the worker the bridge is connected to.
    deal = wait_for(paying, timeout=60, what="the leader to pay a first delivery step")
    book = json.loads((data / "contracts.json").read_text())
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{chain.port}"))
    escrow = contract(w3, "EnergyEscrow", book["EnergyEscrow"])

    (struct,) = next(f for f in escrow.abi if f.get("name") == "getDeal")["outputs"]
    names = [field["name"] for field in struct["components"]]

    def on_chain():
        return dict(zip(names, escrow.functions.getDeal(deal["chain_deal_id"]).call(),
                        strict=True))

    before = on_chain()
    cost = PRICE * ENERGY_WH // 1000
    assert 0 < before["paidWei"] < cost, "the deal must still be delivering when the leader dies"

    leader.process.kill()  # SIGKILL mid-delivery
    leader.process.wait(10)
    statuses = set()

    def closed():
        row = bob.deal(deal["id"])
        statuses.add(row["status"])
        record = on_chain()
        return record if record["status"] == DealStatus.CLOSED else None

    final = wait_for(closed, timeout=90, what="the survivor to finish paying the deal")
    assert follower.said("takes settlement")
    # Relays never opened for a pause: the bridge kept them on, the survivor saw its boards.
    assert "paused" not in statuses, statuses
    assert final["closeReason"] == CloseReason.COMPLETED
    # Every Wh the buyer's meter counted is paid, at the deal's price.
    assert final["deliveredWh"] == ENERGY_WH
    assert final["paidWei"] == cost == PRICE * final["deliveredWh"] // 1000
    assert final["paidWei"] > before["paidWei"]
