"""Several real geth nodes on loopback, as a user with geth 1.13.15 (clique) or ≥ 1.14.1
(--dev) would run them; each step says what it checks. Skipped without GETH_BINARY."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from geth_private.errors import QuorumRefused
from geth_private.genesis import make_genesis, write_genesis
from geth_private.geth import GethBackend
from tests.common import wait_for

from .stand_ins import node_uri

pytestmark = pytest.mark.skipif(
    not os.environ.get("GETH_BINARY"),
    reason="set GETH_BINARY to geth 1.13.15 (clique) or ≥ 1.14.1 (--dev) to run real nodes; "
           "no geth binary can be installed on this machine",
)
KEY_N = 2**10


def clique_or_skip(tmp_path) -> None:
    if not GethBackend(node_uri(tmp_path / "probe")).clique:
        pytest.skip("a network of several machines needs geth 1.13 (clique); this geth runs --dev")


def network(tmp_path, count: int, period: int = 1):
    """`count` machines' nodes (not started) on one genesis naming every machine's key."""
    names = [f"m{n}" for n in range(count)]
    keys = [GethBackend(node_uri(tmp_path / n), scrypt_n=KEY_N).own_key(create=True)
            for n in names]
    genesis = tmp_path / "genesis.json"
    write_genesis(genesis, make_genesis(4242, {}, signers=keys, period=period))
    nodes = [GethBackend(node_uri(tmp_path / n, f"&genesis={genesis}"), scrypt_n=KEY_N)
             for n in names]
    return nodes, keys


def test_three_machines_seal_in_turn_and_survive_one_off(tmp_path):
    clique_or_skip(tmp_path)
    nodes, keys = network(tmp_path, 3)
    first = nodes[0]
    try:
        # Each node inits from the shared genesis and seals with its own key.
        first.start()
        enode = first.enode()
        assert enode.startswith("enode://")
        for node in nodes[1:]:
            node.options = replace(node.options, peers=(enode,))  # dials the first machine
            node.start()
        # They find each other through the first node's enode.
        wait_for(lambda: len(first.peers()) == 2, timeout=60, what="both joins to peer")
        # Blocks advance and every signer seals some of the last 2·N (their authors).
        wait_for(lambda: first.w3.eth.block_number >= 6, timeout=60, what="six blocks")
        wait_for(lambda: len(first.sealing_signers()) == 3, timeout=60, what="all three sealing")
        assert sorted(first.signers()) == sorted(k.lower() for k in keys)
        # One machine off: the other two (⌊3/2⌋+1 = 2) go on making blocks.
        nodes[2].stop()
        height = first.w3.eth.block_number
        wait_for(lambda: first.w3.eth.block_number >= height + 4, timeout=60,
                 what="blocks with one machine off")
    finally:
        for node in nodes:
            node.stop()


def test_two_signers_refuse_a_sealing_stop(tmp_path):
    clique_or_skip(tmp_path)
    nodes, _ = network(tmp_path, 2)
    try:
        nodes[0].start()
        enode = nodes[0].enode()
        nodes[1].options = replace(nodes[1].options, peers=(enode,))
        nodes[1].start()
        # Two signers must both seal: neither may stop.
        wait_for(lambda: nodes[0].w3.eth.block_number >= 4, timeout=60, what="four blocks")
        with pytest.raises(QuorumRefused):
            nodes[0].set_mining(False)
        assert nodes[0].is_mining()
    finally:
        for node in nodes:
            node.stop()


def test_dev_genesis_is_accepted_on_every_start(tmp_path):
    backend = GethBackend(node_uri(tmp_path / "dev", "&period=1"), scrypt_n=KEY_N)
    if backend.clique:
        pytest.skip("this geth is 1.13 (clique): the --dev genesis is geth ≥ 1.14.1's")
    # The first start writes the merged genesis; the restarts reuse it (1.14.0 refused them).
    for _ in range(2):
        with backend:
            height = backend.w3.eth.block_number
            wait_for(lambda h=height: backend.w3.eth.block_number > h, timeout=30,
                     what="a --dev block")
