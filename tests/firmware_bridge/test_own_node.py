"""The bridge's side of its machine's own signer node (a stand-in geth 1.13.15, one of three
clique signers): the status it reports, and the sealing toggles it takes or refuses, whatever
the portal sends."""

from __future__ import annotations

import logging

import pytest

from firmware_bridge.bridge import Bridge
from firmware_bridge.own_node import OwnNode, attach_own_node
from firmware_bridge.remote import RemoteBridge
from geth_private.errors import ChainError
from geth_private.genesis import make_genesis, write_genesis
from geth_private.geth import GethBackend
from tests.geth_private.stand_ins import GETH_1_13_15, node_uri, sealed_lately, stand_in_geth

OTHERS = ["0x" + "1" * 40, "0x" + "2" * 40]


@pytest.fixture
def node(tmp_path, monkeypatch):
    """The machine's node, started as `gridbid chain join` starts it, all signers sealing."""
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_13_15)))
    datadir = tmp_path / "geth"
    me = GethBackend(node_uri(datadir), scrypt_n=2**10).own_key(create=True)
    genesis = tmp_path / "network-genesis.json"
    write_genesis(genesis, make_genesis(4242, {}, signers=[me, *OTHERS], period=2))
    backend = GethBackend(node_uri(datadir, f"&genesis={genesis}"), scrypt_n=2**10)
    backend.start()
    sealed_lately(datadir, me, *OTHERS)
    yield backend
    backend.stop()


def own(node, toggles=True) -> OwnNode:
    attached = GethBackend(node_uri(node.datadir), scrypt_n=2**10)
    attached.attach(node.http_url)
    return OwnNode(attached, node.http_url, toggles=toggles)


def test_the_status_names_the_signer_and_its_network(node):
    assert own(node).status() == {"signer": node.sealer(), "sealing": True, "peers": 0,
                                  "signers": 3, "sealing_signers": 3, "toggles": True}


@pytest.mark.parametrize("on", ["false", 0, None, [False]])
def test_a_malformed_toggle_is_refused_with_a_log_line(node, on, caplog):
    with caplog.at_level(logging.WARNING, logger="firmware_bridge.own_node"):
        assert own(node).set_sealing(on) == {"error": "a sealing toggle says on: true or false"}
    assert "refused a sealing toggle with on=" in caplog.text
    assert node.is_mining()


def test_without_sealing_toggle_no_command_stops_the_node(node, caplog):
    bridge = Bridge()
    remote = RemoteBridge(bridge, "http://127.0.0.1:1", "t", bridge_id="x",
                          node=own(node, toggles=False))
    try:
        with caplog.at_level(logging.WARNING, logger="firmware_bridge.own_node"):
            answer = remote._on_command({"action": "set_sealing", "on": False})
        assert "does not take sealing toggles" in answer["error"]
        assert "started without --sealing-toggle" in caplog.text
        assert node.is_mining()
    finally:
        remote.close()
        bridge.close()


def test_a_bridge_without_a_node_refuses_a_toggle(caplog):
    bridge = Bridge()
    remote = RemoteBridge(bridge, "http://127.0.0.1:1", "t", bridge_id="x")
    try:
        with caplog.at_level(logging.WARNING, logger="firmware_bridge.remote"):
            answer = remote._on_command({"action": "set_sealing", "on": False})
        assert "started without --node" in answer["error"]
        assert "serves no node of its own" in caplog.text
    finally:
        remote.close()
        bridge.close()


def test_a_node_gone_is_said_once_until_it_answers(node, caplog):
    mine = own(node)
    node.stop()
    with caplog.at_level(logging.WARNING, logger="firmware_bridge.own_node"):
        first, second = mine.status(), mine.status()
    assert first["error"].startswith(f"this machine's node at {node.http_url} does not answer")
    assert second == first
    assert caplog.text.count("does not answer") == 1
    assert "did not take the toggle" in mine.set_sealing(False)["error"]


def test_no_node_running_on_the_data_dir_says_what_to_run(tmp_path):
    with pytest.raises(ChainError, match="start it with `gridbid chain join --genesis FILE`"):
        attach_own_node(None, str(tmp_path), toggles=True)


def test_gridbid_bridge_says_what_its_node_options_need(tmp_path):
    """`--sealing-toggle` without a node, and `--node` where no node runs, stop the bridge
    before it opens a board, each saying what to do (exit status 2)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GRIDBID_BRIDGE_TOKEN": "t"}
    base = [sys.executable, "-m", "web.cli", "bridge", "--board", "emulator://pv-1?kind=producer",
            "--portal", "http://127.0.0.1:1", "--bridge-id", "x", "--data-dir", str(tmp_path)]
    for extra, said in ((["--sealing-toggle"], "--sealing-toggle needs --node"),
                        (["--node"], "no geth node runs from")):
        run = subprocess.run([*base, *extra], capture_output=True, text=True, env=env,
                             timeout=60)
        assert run.returncode == 2 and said in run.stdout, run.stdout + run.stderr
