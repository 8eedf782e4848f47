"""LOCAL_BRIDGE=process: the portal's own emulated boards are served by a `gridbid bridge`
child process registered like a remote bridge (token and meter keys in the data directory);
a trade delivers and is paid through it, and the child ends with the portal."""

from __future__ import annotations

import os
import re

import pytest

from geth_private.anvil import find_anvil, free_port
from tests.common import PortalWorker, seated_logins, wait_for

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it")

PRICE = 10**15  # wei per kWh


@pytest.fixture
def portal(tmp_path):
    """One `gridbid run` whose boards are its child bridge's."""
    port = free_port()
    env = {**os.environ, "GRIDBID_LOCAL_BRIDGE": "process",
           "GRIDBID_LOCAL_BRIDGE_PORTAL": f"http://127.0.0.1:{port}",
           "GRIDBID_SCRYPT_N": "1024", "GRIDBID_EMULATOR_SPEED": "600", "GRIDBID_TICK_S": "0.1",
           "GRIDBID_EVENT_POLL_S": "0.2", "GRIDBID_SOFT_CLOSE_S": "0", "PYTHONUNBUFFERED": "1"}
    for key in ("GRIDBID_STORE_URL", "GRIDBID_MESSAGE_QUEUE"):
        env.pop(key, None)
    worker = PortalWorker("portal", tmp_path, env, "anvil://", tmp_path / "var", port=port)
    try:
        wait_for(worker.ready, timeout=60, what="the portal to serve")
        yield worker
    finally:
        worker.stop()


def test_the_portals_own_boards_are_a_child_bridges(portal):
    data = portal.data
    wait_for(lambda: portal.said("bridge local claimed boards ['pv-alice', 'load-bob', "
                                 "'load-carol']"), timeout=60,
             what="the child bridge to claim the demo's boards")
    child = int(re.search(r"local bridge started \(pid (\d+)", portal.log.read_text())[1])
    assert child != portal.process.pid
    assert (data / "local_bridge.token").stat().st_mode & 0o077 == 0  # its user's alone
    assert "board pv-alice: meter 0x" in (data / "local_bridge.log").read_text()

    alice, bob = seated_logins(portal.url, data)
    wait_for(lambda: alice.wallet()["unlisted_wh"] >= 10, timeout=60,
             what="alice's tokens, minted from the child bridge's signed readings")
    assert bob.deposit("1")["status"] in ("queued", "pending")  # sent at once, or soon
    wait_for(lambda: int(bob.wallet()["escrow_free_wei"]) > 0, what="bob's deposit")
    listing = alice.create_listing(10, PRICE, 10)
    bob.bid(listing["id"], PRICE)

    def completed():
        deal = next((d for d in bob.deals() if d["listing_id"] == listing["id"]), None)
        return deal if deal and deal["status"] == "closed" else None

    deal = wait_for(completed, timeout=90, what="the deal to deliver through the child bridge")
    assert (deal["delivered_wh"], int(deal["paid_wei"])) == (10, PRICE * 10 // 1000)

    portal.stop()
    wait_for(lambda: not _alive(child), timeout=15, what="the child bridge to end")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as ended.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
