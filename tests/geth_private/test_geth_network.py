"""Several machines' geth nodes on one clique genesis, each a stand-in geth on loopback ports:
signers, network id, peering, what a join refuses, and the sealing quorum."""

from __future__ import annotations

import json
import logging

import pytest

from geth_private.backend import MINING_TOGGLE
from geth_private.errors import ChainError, ChainUnavailable, QuorumRefused
from geth_private.genesis import clique_signers, make_genesis, write_genesis
from geth_private.geth import GethBackend
from tests.common import wait_for

from .stand_ins import (
    GETH_1_13_15,
    GETH_1_14_0,
    GETH_1_14_1,
    enode_id,
    fake_geth,
    node_uri,
    run_args,
    stand_in_geth,
)

KEY_N = 2**10  # a cheap scrypt for the test keystores


@pytest.fixture
def geth_113(tmp_path, monkeypatch):
    """GETH_BINARY set to a stand-in geth 1.13.15."""
    binary = stand_in_geth(tmp_path, GETH_1_13_15)
    monkeypatch.setenv("GETH_BINARY", str(binary))
    return binary


def machine(tmp_path, name: str, genesis=None, query: str = "") -> GethBackend:
    """One machine's node: its own datadir, joining `genesis` if given."""
    joined = f"&genesis={genesis}" if genesis else ""
    return GethBackend(node_uri(tmp_path / name, joined + query), scrypt_n=KEY_N)


def shared_genesis(tmp_path, signers: list[str], chain_id: int = 4242):
    path = tmp_path / "shared" / "genesis.json"
    write_genesis(path, make_genesis(chain_id, {}, signers=signers, period=2))
    return path


def test_a_clique_genesis_names_every_signer():
    signers = ["0x" + f"{n:x}" * 40 for n in (1, 2, 3)]
    genesis = make_genesis(4242, {}, signers=signers)
    extra = bytes.fromhex(genesis["extraData"][2:])
    assert len(extra) == 32 + 3 * 20 + 65
    assert extra[:32] == bytes(32) and extra[-65:] == bytes(65)
    assert clique_signers(genesis) == signers
    with pytest.raises(ValueError, match="at least one signer"):
        make_genesis(4242, {}, signers=[])


def test_each_machine_seals_with_its_own_key(tmp_path, geth_113):
    """The seed's machines each make a key; one genesis names all; every node seals with its own."""
    nodes = [machine(tmp_path, name) for name in ("producer", "consumer", "third")]
    keys = [node.own_key(create=True) for node in nodes]
    genesis = shared_genesis(tmp_path, keys)
    nodes = [machine(tmp_path, name, genesis) for name in ("producer", "consumer", "third")]
    for node, key in zip(nodes, keys, strict=True):
        with node:
            assert node.sealer() == key
            assert node.signers() == [k.lower() for k in keys]
            assert node.has(MINING_TOGGLE) and node.is_mining()
            args = run_args(node.datadir)[-1]
            assert args[args.index("--unlock") + 1] == key and "--mine" in args
            assert "clique" in args[args.index("--http.api") + 1].split(",")
            node.propose("0x" + "ab" * 20)  # clique_propose is offered
            assert node.w3.manager.request_blocking("clique_proposals", []) == {
                "0x" + "ab" * 20: True
            }


def test_a_key_outside_the_genesis_does_not_seal_until_voted_in(tmp_path, geth_113):
    outsider = machine(tmp_path, "outsider")
    outsider.own_key(create=True)
    genesis = shared_genesis(tmp_path, ["0x" + "11" * 20])
    with machine(tmp_path, "outsider", genesis) as node:
        assert "--mine" not in run_args(node.datadir)[-1]
        assert not node.has(MINING_TOGGLE)
        (node.datadir / "signers.json").write_text(json.dumps(["0x" + "11" * 20, node.sealer()]))
        node.set_mining(True)  # voted in: its toggle is its own now
        assert node.has(MINING_TOGGLE) and node.is_mining()


def test_a_joining_node_takes_the_network_id_from_the_genesis(tmp_path, geth_113):
    """Peers with another network id never connect, and neither side says so."""
    with machine(tmp_path, "producer", query="&networkid=4242") as producer:
        made = producer.genesis_path
        consumer = machine(tmp_path, "consumer", made, f"&peers={producer.enode()}")
        with consumer:
            args = run_args(consumer.datadir)[-1]
            assert args[args.index("--networkid") + 1] == "4242"
            wait_for(lambda: consumer.peers(), timeout=20, what="the consumer to peer")
            assert consumer.peers()[0]["enode"] == producer.enode()


def test_a_dev_genesis_is_refused_before_geth_init(tmp_path, geth_113):
    dev = tmp_path / "dev-genesis.json"
    write_genesis(dev, make_genesis(1337, {}, signers=None))
    node = machine(tmp_path, "consumer", dev)
    with pytest.raises(ChainError, match="not a clique genesis.*gridbid chain init --signers"):
        node.start()
    assert not (node.datadir / "geth" / "chaindata").exists()  # the datadir is still fresh
    assert not (node.datadir / "genesis.json").exists()


def test_geth_1_14_0_is_refused_with_what_to_use(tmp_path, monkeypatch):
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_14_0)))
    node = machine(tmp_path, "node")
    with pytest.raises(ChainUnavailable, match="fixed in 1.14.1.*use geth ≥ 1.14.1"):
        node.start()
    assert run_args(node.datadir) == []  # refused before geth ran


def test_geth_1_14_1_runs_the_dev_genesis(tmp_path, monkeypatch):
    """1.14.1's release already holds the fix (go-ethereum c04b8e6d74, #29579): not refused."""
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_14_1)))
    node = machine(tmp_path, "node")
    with node:
        assert node.w3.eth.chain_id == 1337
    assert "--dev" in run_args(node.datadir)[-1]


def test_a_mistyped_peer_is_warned_not_fatal(tmp_path, geth_113, caplog):
    good = f"enode://{enode_id(7)}@10.0.0.2:30303"
    node = machine(tmp_path, "node", query=f"&peers=enode://ab@10.0.0.2:30303,{good}")
    with caplog.at_level(logging.WARNING, logger="geth_private.geth"), node:
        assert node.w3.eth.chain_id == 1337
    assert "enode://ab@10.0.0.2:30303 not added" in caplog.text
    assert good not in caplog.text  # the rest were still added


def test_geth_init_runs_the_backends_own_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("GETH_BINARY", str(fake_geth(tmp_path / "other", GETH_1_13_15)))
    chosen = stand_in_geth(tmp_path, GETH_1_13_15)
    node = GethBackend(node_uri(tmp_path / "node"), scrypt_n=KEY_N, binary=str(chosen))
    with node:
        assert (node.datadir / "init-by").read_text() == str(chosen)


# -- the sealing toggle keeps floor(N/2)+1 signers sealing ------------------------------------


def sealing_network(tmp_path, others: int):
    node = machine(tmp_path, "me")
    signers = [node.own_key(create=True)] + ["0x" + f"{n:x}" * 40 for n in range(1, others + 1)]
    return machine(tmp_path, "me", shared_genesis(tmp_path, signers)), signers


def sealed(node, authors: list[str]) -> None:
    """The chain the stand-in reports: who sealed blocks 1, 2, … (clique_getSigner, _status)."""
    (node.datadir / "authors.json").write_text(json.dumps(authors))


def test_a_toggle_refuses_when_too_few_signers_would_seal(tmp_path, geth_113):
    node, (me, b, c) = sealing_network(tmp_path, 2)  # three signers: two must seal
    with node:
        sealed(node, [me, b, c] * 30 + [me, b] * 4)  # the third machine went off 8 blocks ago
        with pytest.raises(QuorumRefused, match="leave 1 of 3 signers sealing; clique needs 2"):
            node.set_mining(False)
        assert node.is_mining()
        sealed(node, [me, b, c] * 30)
        node.set_mining(False)
        assert not node.is_mining()
        node.set_mining(True)


def test_a_signer_just_stopped_no_longer_counts(tmp_path, geth_113):
    """A second toggle soon after a first would halt the chain: clique_status still lists the
    first one for 64 blocks, so the authors of the last 2·N blocks decide."""
    node, (me, b, c) = sealing_network(tmp_path, 2)
    with node:
        sealed(node, [me, b, c] * 30 + [me, b] * 4)  # c stopped its sealing 8 blocks ago
        status = node.w3.manager.request_blocking("clique_status", [])
        assert status["sealerActivity"][c.lower()] > 0  # still "active" in geth's 64 blocks
        with pytest.raises(QuorumRefused):
            node.set_mining(False)
        assert node.sealing_signers() == sorted([me.lower(), b.lower()])


def test_two_signers_cannot_stop_either(tmp_path, geth_113):
    node, (me, other) = sealing_network(tmp_path, 1)
    with node:
        sealed(node, [me, other] * 30)
        with pytest.raises(QuorumRefused, match="at least three signers"):
            node.set_mining(False)


def test_a_fresh_chain_refuses_a_stop(tmp_path, geth_113):
    """Before anyone sealed, nobody is known to seal (geth's clique_status errs at block 1)."""
    node, _ = sealing_network(tmp_path, 2)
    with node:
        for authors in ([], [node.sealer()]):
            sealed(node, authors)
            with pytest.raises(QuorumRefused, match="leave 0 of 3"):
                node.set_mining(False)
