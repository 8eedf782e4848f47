"""A bridge on a machine with its own clique signer node: the node in its owner's wallet, and
the owner's sealing toggle carried to it through the bridge.

The "other machine" is this process reaching the portal only over its HTTP/Socket.IO port:
alice's emulated board behind its own bridge, and beside it a stand-in geth 1.13.15 (a Python
process answering geth's JSON-RPC: clique_status/clique_getSigners, miner_start/stop;
tests/geth_private/stand_ins.py) as the machine's node, one of three signers, whose two other
signers' sealing the test sets as the blocks' authors (the stand-in's authors file).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen

import pytest
from eth_account import Account

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError
from firmware_bridge.own_node import OwnNode
from firmware_bridge.remote import RemoteBridge
from geth_private.genesis import make_genesis, write_genesis
from geth_private.geth import GethBackend
from geth_private.keystore import MachineKeys
from tests.common import gridbid_here, page_login, wait_for
from tests.geth_private.stand_ins import GETH_1_13_15, node_uri, sealed_lately, stand_in_geth
from web.state import portal

REMOTE = {"REMOTE_BOARDS": "pv-alice"}
OTHERS = ["0x" + "1" * 40, "0x" + "2" * 40]  # the other two machines' signers
GRIDBID = [sys.executable, "-m", "web.cli"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def node(tmp_path, monkeypatch):
    """This machine's node: a stand-in geth sealing with its own key, one of three signers."""
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_13_15)))
    datadir = tmp_path / "machine" / "geth"
    me = GethBackend(node_uri(datadir), scrypt_n=2**10).own_key(create=True)
    genesis = tmp_path / "network-genesis.json"
    write_genesis(genesis, make_genesis(4242, {}, signers=[me, *OTHERS], period=2))
    backend = GethBackend(node_uri(datadir, f"&genesis={genesis}"), scrypt_n=2**10)
    backend.start()
    yield backend
    backend.stop()


def others_sealing(node: GethBackend, *signers: str) -> None:
    """Which of the other two machines sealed lately, beside this one (the blocks' authors)."""
    sealed_lately(node.datadir, node.sealer(), *signers)


def connect(server, login, node, *, toggles: bool):
    """Alice's machine: her board behind a bridge registered to it, reporting the node."""
    grid = Microgrid(speed=600.0, start_hour=11.0, seed=5)
    grid.add_producer("pv-alice")
    key = Account.create()
    bridge = Bridge(heartbeat_s=0.5, meter_keys=lambda board_id: key)
    for device in grid.start().values():
        bridge.attach(device)
    answer = login("admin").post("/api/admin/bridges", json={
        "id": "alices-machine",
        "boards": [{"board_id": "pv-alice", "meter": key.address, "time_factor": grid.speed}]})
    assert answer.status_code == 201, answer.get_json()
    # The bridge attaches to the node `gridbid chain join` runs, through its datadir and URL.
    attached = GethBackend(node_uri(node.datadir), scrypt_n=2**10)
    attached.attach(node.http_url)
    own = OwnNode(attached, node.http_url, toggles=toggles)
    remote = RemoteBridge(bridge, server, answer.get_json()["token"],
                          bridge_id="alices-machine", node=own)
    remote.connect()
    return grid, bridge, remote


@pytest.fixture
def machine(server, login, node):
    """Alice's machine, its bridge started with --sealing-toggle."""
    grid, bridge, remote = connect(server, login, node, toggles=True)
    yield remote
    remote.close()
    bridge.close()
    grid.stop()


def node_in_wallet(client):
    nodes = client.get("/api/wallet").get_json()["nodes"]
    return nodes[0] if nodes else None


def toggle(client, on):
    return client.post("/api/nodes/alices-machine/sealing", json={"on": on})


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_the_owner_sees_her_machine_s_node_and_toggles_it(app, node, machine, login):
    alice = login("alice")
    shown = wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
    assert shown["signer"] == node.sealer()
    assert shown["sealing"] is True and shown["toggles"] is True and shown["reporting"] is True
    assert shown["signers"] == 3 and shown["peers"] == 0

    others_sealing(node, *OTHERS)  # both other machines seal: hers may stop
    answer = toggle(alice, False)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["sealing"] is False
    assert not node.is_mining()  # the node itself stopped, on the other machine
    wait_for(lambda: node_in_wallet(alice)["sealing"] is False, what="the wallet to show it")
    assert toggle(alice, True).get_json()["sealing"] is True
    assert node.is_mining()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_stop_below_the_quorum_is_refused_as_a_sentence(app, node, machine, login):
    alice = login("alice")
    wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
    others_sealing(node, OTHERS[0])  # the third machine is off: two must still seal
    answer = toggle(alice, False)
    assert answer.status_code == 409
    error = answer.get_json()["error"]
    assert error.startswith("Your node keeps sealing: stopping this node's sealing would leave "
                            "1 of 3 signers sealing; clique needs 2")
    assert node.is_mining()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_nobody_but_the_owner_may_toggle_it(app, node, machine, login):
    alice = login("alice")
    wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
    others_sealing(node, *OTHERS)
    for name in ("carol", "admin"):  # carol's board is not the bridge's; nor is the admin's
        client = login(name)
        assert node_in_wallet(client) is None
        answer = toggle(client, False)
        assert answer.status_code == 403, answer.get_json()
        assert "not yours" in answer.get_json()["error"]
    assert node.is_mining()
    assert toggle(alice, "off").status_code == 400  # malformed: not a boolean


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_bridge_without_sealing_toggle_refuses_the_portal(app, server, node, login):
    """What the portal asks is what the bridge's owner allowed: started without
    --sealing-toggle, the bridge refuses even the portal's own command."""
    grid, bridge, remote = connect(server, login, node, toggles=False)
    try:
        alice = login("alice")
        shown = wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
        assert shown["toggles"] is False
        others_sealing(node, *OTHERS)
        answer = toggle(alice, False)
        assert answer.status_code == 409
        assert ("does not take sealing toggles: its owner starts it with --sealing-toggle"
                in answer.get_json()["error"])
        # The portal (its operator) sending the command itself gets no further.
        remote_nodes = portal(app).runtime.remote_boards.nodes
        with pytest.raises(BridgeError, match="does not take sealing toggles"):
            remote_nodes.set_sealing("alices-machine", False)
        assert node.is_mining()
    finally:
        remote.close()
        bridge.close()
        grid.stop()


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_malformed_node_status_is_refused_with_a_log_line(app, node, machine, login, caplog):
    alice = login("alice")
    good = wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
    with caplog.at_level(logging.WARNING, logger="firmware_bridge.remote_nodes"):
        machine.client.emit("node", {"signer": "me", "sealing": "yes", "peers": -1,
                                     "signers": 3, "sealing_signers": 3, "toggles": True},
                            namespace="/bridge")
        wait_for(lambda: "node status of bridge alices-machine refused" in caplog.text,
                 what="the refusal's log line")
    assert node_in_wallet(alice)["signer"] == good["signer"]


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_node_not_answering_is_said_so(app, node, machine, login):
    alice = login("alice")
    wait_for(lambda: node_in_wallet(alice), what="the node in alice's wallet")
    node.stop()  # geth on alice's machine went away; her bridge still runs
    shown = wait_for(lambda: (node_in_wallet(alice) or {}).get("error"), what="the error")
    assert "this machine's node" in shown and "does not answer" in shown
    answer = toggle(alice, True)
    assert answer.status_code == 409
    assert "did not take the toggle" in answer.get_json()["error"]


@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_a_real_bridge_process_carries_the_toggle_to_its_machine_s_node(
        app, server, login, runtime, tmp_path):
    """As the user runs it: `gridbid chain keygen/init --signers/join` on the machine, then
    `gridbid bridge --sealing-toggle` on the same data directory finds that node by itself."""
    env = {**os.environ, "GETH_BINARY": str(stand_in_geth(tmp_path, GETH_1_13_15)),
           "PYTHONUNBUFFERED": "1"}
    data, uri = tmp_path / "machine", node_uri(tmp_path / "machine" / "geth")
    chain = [*GRIDBID, "chain"]
    common = ["--chain", uri, "--data-dir", str(data)]
    me = gridbid_here(env, "chain", "keygen", *common).stdout.strip()
    made = gridbid_here(env, "chain", "init", *common, "--signers", ",".join([me, *OTHERS]))
    assert made.returncode == 0, made.stderr
    # Logs to files: a pipe nobody reads meanwhile fills, and its writer then hangs.
    join = Popen([*chain, "join", *common, "--genesis", str(data / "network-genesis.json")],
                 stdout=PIPE, stderr=(tmp_path / "join.log").open("w"), text=True, env=env)
    said = tmp_path / "bridge.log"
    bridge = None
    try:
        assert "running, RPC at" in join.stdout.readline()
        # The meter key the bridge will use (it prints it on its first start; made here first).
        meter = MachineKeys(data / "meters").get("pv-alice").address
        answer = login("admin").post("/api/admin/bridges", json={
            "id": "alices-machine",
            "boards": [{"board_id": "pv-alice", "meter": meter, "time_factor": 600}]})
        (data / "token").write_text(answer.get_json()["token"])
        board = "emulator://pv-alice?kind=producer&speed=600"
        bridge = Popen([*GRIDBID, "bridge", "--board", board, "--portal", server,
                        "--bridge-id", "alices-machine", "--token-file",
                        str(data / "token"), "--data-dir", str(data), "--sealing-toggle"],
                       stdout=said.open("w"), stderr=STDOUT, text=True, env=env)
        demo = {a["name"]: a["address"] for a in runtime.demo_accounts}
        wait_for(lambda: runtime.store.participant(demo["alice"]), timeout=60,
                 what="alice seated on her board behind the bridge process")
        alice = login("alice")
        shown = wait_for(lambda: node_in_wallet(alice), timeout=60, what="the node")
        assert shown["signer"].lower() == me.lower() and shown["toggles"] is True
        sealed_lately(data / "geth", me, OTHERS[0])
        refused = toggle(alice, False)
        assert refused.status_code == 409
        assert "clique needs 2" in refused.get_json()["error"]
        sealed_lately(data / "geth", me, *OTHERS)
        assert toggle(alice, False).get_json()["sealing"] is False
        status = gridbid_here(env, "chain", "status", *common)
        assert '"mining": false' in status.stdout, status.stdout + status.stderr
    finally:
        for process in (bridge, join):
            if process is not None:
                process.terminate()
                process.wait(timeout=90)
    if bridge is not None:
        told = said.read_text()
        assert f"signer {me}" in told.replace(me.lower(), me) and "toggle allowed" in told, told


@pytest.mark.browser
@pytest.mark.parametrize("app", [REMOTE], indirect=True)
def test_the_wallet_page_shows_the_node_and_its_refusal(app, server, node, machine, browser):
    """In the page: alice's node under Block production, a refused stop as the bridge's
    sentence beside it, and an allowed one turning the button round."""
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, server, "alice", "alice-demo")
    page.wait_for_selector("#nodes-card:not([hidden]) #nodes li:has-text('sealing yes')")
    assert node.sealer() in page.inner_text("#nodes")
    others_sealing(node, OTHERS[0])
    page.click("#nodes .node-toggle:has-text('Stop sealing')")
    page.wait_for_selector("#node-error:has-text('Your node keeps sealing')")
    assert "clique needs 2" in page.inner_text("#node-error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#nodes-card").screenshot(path=ARTIFACTS / "wallet-node-refused.png")
    assert node.is_mining()
    others_sealing(node, *OTHERS)
    page.click("#nodes .node-toggle:has-text('Stop sealing')")
    page.wait_for_selector("#nodes .node-toggle:has-text('Start sealing')")
    assert "sealing no" in page.inner_text("#nodes")
    assert not node.is_mining()
    assert page.inner_text("#node-error") == ""
    assert not errors
