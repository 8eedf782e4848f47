"""Several workers, one local bridge: two `gridbid run` processes on one PostgreSQL, Redis,
anvil and data directory, the demo on. Only the worker holding the `local bridge` lease runs
the child bridge that emulates the demo's boards; the other reaches them through the queue.
That worker killed (SIGKILL) mid-delivery, its child ends, the survivor starts the next one,
the boards come back online and the deal's relays are switched on again: it completes."""

from __future__ import annotations

import os
import re

import pytest

from geth_private import Keystore
from geth_private.anvil import find_anvil
from tests.common import PortalWorker, seated_logins, signed_in, wait_for
from tests.web.test_local_bridge import _alive
from web.runtime.accounts import AccountDirectory

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a shared chain)")

ADMIN = "admin-of-the-workers"  # the admin's passphrase, made before the workers start
ENERGY_WH = 12  # bob's 10 W load at speed 600 draws 1.7 Wh a second: ~7 s of delivery
PRICE = 10**15  # wei per kWh
STARTED = re.compile(r"local bridge started \(pid (\d+)")


@pytest.fixture
def workers(tmp_path, chain, postgres_url, redis_url):
    """Workers A and B on one data directory, store and queue; the admin's key."""
    data = tmp_path / "var"
    keystore = Keystore(data / "keystore", 1024)
    AccountDirectory(data / "accounts.json").ensure("admin", lambda: keystore.new(ADMIN))
    env = {**os.environ, "GRIDBID_STORE_URL": postgres_url, "GRIDBID_MESSAGE_QUEUE": redis_url,
           "GRIDBID_SECRET_KEY": "shared-by-the-workers", "GRIDBID_SCRYPT_N": "1024",
           "GRIDBID_EMULATOR_SPEED": "600", "GRIDBID_LOAD_W": "10", "GRIDBID_TICK_S": "0.1",
           "GRIDBID_EVENT_POLL_S": "0.2", "GRIDBID_SOFT_CLOSE_S": "0", "PYTHONUNBUFFERED": "1"}
    for key in ("GRIDBID_LOCAL_BRIDGE", "GRIDBID_LOCAL_BRIDGE_PORTAL"):
        env.pop(key, None)  # the default: `gridbid run` names its own URL, the mode follows
    url = f"http://127.0.0.1:{chain.port}"
    started = [PortalWorker(name, tmp_path, env, url, data) for name in ("a", "b")]
    children: list[int] = []
    try:
        for worker in started:
            wait_for(worker.ready, timeout=60, what=f"worker {worker.name} to serve")
        yield started, children
    finally:
        for worker in started:
            worker.stop()
        for pid in children:  # each ends with its worker; never left behind by a failure
            wait_for(lambda p=pid: not _alive(p), timeout=15, what=f"bridge {pid} to end")


def _children(worker: PortalWorker) -> list[int]:
    return [int(pid) for pid in STARTED.findall(worker.log.read_text())]


def _online(session, boards=("pv-alice", "load-bob", "load-carol")) -> bool:
    rows = {row["board_id"]: row for row in session.get("/api/admin/health")["boards"]}
    return all(rows.get(board, {}).get("online") for board in boards)


def test_one_bridge_serves_the_workers_and_outlives_its_starter(workers, tmp_path):
    (a, b), children = workers
    data = tmp_path / "var"
    keeper = wait_for(lambda: next((w for w in (a, b) if _children(w)), None), timeout=30,
                      what="a worker to start the local bridge")
    other = b if keeper is a else a
    children += _children(keeper)
    wait_for(lambda: keeper.said("bridge local claimed boards"), timeout=30,
             what="the local bridge to claim the demo's boards")
    address = AccountDirectory(data / "accounts.json").address_of("admin")
    admin = signed_in(other.url, Keystore(data / "keystore", 1024).unlock(address, ADMIN))
    # The other worker knows the boards through the queue and runs no bridge of its own.
    wait_for(lambda: _online(admin), timeout=30, what="the boards online on the other worker")
    assert _children(other) == [] and len(_children(keeper)) == 1

    alice, bob = seated_logins(other.url, data, timeout=30)
    wait_for(lambda: alice.wallet()["unlisted_wh"] >= ENERGY_WH, timeout=30,
             what="alice's tokens, minted from the local bridge's readings")
    assert bob.deposit("1")["status"] in ("queued", "pending")
    wait_for(lambda: int(bob.wallet()["escrow_free_wei"]) > 0, what="bob's deposit")
    listing = alice.create_listing(ENERGY_WH, PRICE, 10)
    assert bob.bid(listing["id"], PRICE)["highest_bid_wei"] == str(PRICE)

    def deal(status):
        row = next((d for d in bob.deals() if d["listing_id"] == listing["id"]), None)
        return row if row and row["status"] == status else None

    wait_for(lambda: deal("active"), timeout=30, what="the deal to deliver")
    keeper.process.kill()  # SIGKILL: its worker dies with it, its bridge child soon after
    keeper.process.wait(10)
    wait_for(lambda: not _alive(children[0]), timeout=10, what="the first bridge to end")
    wait_for(lambda: _children(other), timeout=20, what="the survivor to start the bridge")
    children += _children(other)
    assert len(_children(other)) == 1, "one bridge at a time"
    wait_for(lambda: _online(admin), timeout=20, what="the boards online again")
    # The survivor switched the relays on again through the new bridge: delivery completes.
    done = wait_for(lambda: deal("closed"), timeout=40, what="the deal to complete")
    assert (done["delivered_wh"], int(done["paid_wei"])) == (ENERGY_WH, PRICE * ENERGY_WH // 1000)
