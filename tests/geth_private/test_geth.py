"""The geth:// backend as a process: what --dev cannot do, start/stop on a stand-in, a real node."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
from eth_account import Account

from geth_private import TxManager
from geth_private.backend import MINING_TOGGLE, PEERS
from geth_private.errors import CapabilityMissing, ChainError, ChainUnavailable
from geth_private.genesis import make_genesis, read_genesis, write_genesis
from geth_private.geth import OPERATOR_FUNDS, GethBackend
from geth_private.keystore import Keystore

from .stand_ins import (
    ETH,
    GETH_1_13_15,
    GETH_1_14_12,
    SIGNER,
    answers,
    backend_with,
    free_ports,
    pool_tx,
    stand_in_geth,
)

# -- what 1.14 cannot do is reported, not faked ----------------------------------------------


def test_dev_mode_has_no_mining_toggle(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch)
    with pytest.raises(CapabilityMissing, match="no miner to stop.*use geth 1.13"):
        backend.set_mining(False)
    with pytest.raises(CapabilityMissing, match="cannot mine on demand"):
        backend.mine()
    assert not backend.has(MINING_TOGGLE) and not backend.has(PEERS)
    with pytest.raises(CapabilityMissing, match="peer-to-peer networking off"):
        backend.peers()


def test_clique_toggle_is_known_before_start(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_13_15, monkeypatch)
    with pytest.raises(ChainUnavailable, match="not started"):
        backend.set_mining(False)  # a clique node can, once it runs
    assert backend.has(MINING_TOGGLE)
    with pytest.raises(CapabilityMissing, match="a block per 5 s"):
        backend.mine()


def test_dev_mode_refuses_static_peers(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch, "&peers=enode://ab@10.0.0.2:1")
    with pytest.raises(CapabilityMissing, match="peers= and genesis= need geth 1.13"):
        backend.start()
    assert not (tmp_path / "node").exists()  # refused before touching the datadir


def test_datadir_of_the_other_mode_is_refused(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch)
    (tmp_path / "node" / "geth" / "chaindata").mkdir(parents=True)
    write_genesis(backend.genesis_path, make_genesis(1337, {}, signers=[SIGNER]))
    with pytest.raises(ChainError, match="made for clique \\(geth 1.13\\)"):
        backend.start()


def test_port_in_use_is_reported(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch, f"&http={port}")
        (tmp_path / "node" / "geth" / "chaindata").mkdir(parents=True)
        write_genesis(backend.genesis_path, make_genesis(1337, {}, signers=None))
        with pytest.raises(ChainUnavailable, match=f"127.0.0.1:{port} is already in use"):
            backend.start()


# -- start/stop plumbing against a stand-in geth --------------------------------------------


def test_start_initialises_then_restart_reuses_the_datadir(tmp_path, monkeypatch):
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_13_15)))
    p2p, http, ws, auth = free_ports(4)
    node = tmp_path / "node"
    uri = (
        f"geth://?datadir={node}&networkid=4242&period=2&port={p2p}&http={http}&ws={ws}"
        f"&authrpc={auth}&peers=enode://ab@10.0.0.2:30303"
    )
    backend = GethBackend(uri, scrypt_n=2**10)
    with backend:
        sealer = Keystore(node / "keystore").addresses()
        assert len(sealer) == 1
        genesis = read_genesis(node / "genesis.json")
        assert sealer[0][2:].lower() in genesis["extraData"]
        faucet = backend.faucet()
        assert faucet.address not in sealer  # the app's key is not in geth's keystore
        assert backend.w3.eth.get_balance(faucet.address) == OPERATOR_FUNDS
        assert backend.w3.eth.get_balance(sealer[0]) == 0
        for secret in ("sealer.pass", "operator.pass"):
            assert stat.S_IMODE(os.stat(node / secret).st_mode) == 0o600
        assert backend.is_mining()
        backend.set_mining(False)
        assert not backend.is_mining()
        assert backend.block_period() == 2
        assert backend.status()["chain_id"] == 4242
        run = json.loads((node / "runs.json").read_text().splitlines()[0])
        assert run[run.index("--unlock") + 1] == sealer[0]
    with pytest.raises(ChainUnavailable, match="not started"):
        backend.faucet()
    assert not answers(http)
    with backend:  # no second init, same keys
        assert Keystore(node / "keystore").addresses() == sealer
        assert backend.faucet().address == faucet.address
        assert backend.is_mining()  # --mine again on every start
    assert len((node / "runs.json").read_text().splitlines()) == 2


def test_a_node_that_dies_at_start_shows_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_14_12)))
    p2p, http, ws, auth = free_ports(4)
    node = tmp_path / "node"
    backend = GethBackend(
        f"geth://?datadir={node}&http={http}&ws={ws}&authrpc={auth}", scrypt_n=2**10
    )
    (node / "geth" / "chaindata").mkdir(parents=True)
    write_genesis(node / "genesis.json", make_genesis(1337, {}, signers=None))
    (node / "fatal").write_text("database already contains an incompatible genesis block")
    with pytest.raises(ChainUnavailable, match="(?s)exited while starting.*incompatible genesis"):
        backend.start()
    assert not answers(http)
    (node / "genesis.json").unlink()
    with pytest.raises(ChainError, match="no readable genesis.json"):
        backend.start()


def test_pending_hashes_reads_a_full_pool(tmp_path, monkeypatch):
    """geth's pool lists hashes as strings, by sender then decimal nonce; pending before queued."""
    monkeypatch.setenv("GETH_BINARY", str(stand_in_geth(tmp_path, GETH_1_13_15)))
    p2p, http, ws, auth = free_ports(4)
    node = tmp_path / "node"
    uri = f"geth://?datadir={node}&port={p2p}&http={http}&ws={ws}&authrpc={auth}"
    sender = Account.create().address
    hashes = ["0x" + f"{n:x}" * 64 for n in range(1, 4)]
    pool = {
        "pending": {sender: {"10": pool_tx(sender, 10, hashes[1]),
                             "9": pool_tx(sender, 9, hashes[0])}},
        "queued": {sender: {"12": pool_tx(sender, 12, hashes[2])}},
    }
    with GethBackend(uri, scrypt_n=2**10) as backend:
        assert backend.pending_hashes() == []
        (node / "txpool.json").write_text(json.dumps(pool))
        assert backend.pending_hashes() == hashes


# -- a real node (GETH_BINARY) ---------------------------------------------------------------

real_geth = pytest.mark.skipif(
    not os.environ.get("GETH_BINARY"),
    reason="set GETH_BINARY to a geth ≥ 1.13 binary to run the geth backend tests",
)


@real_geth
def test_real_node_mines_persists_and_reports(tmp_path):
    p2p, http, ws, auth = free_ports(4)
    uri = (
        f"geth://?datadir={tmp_path / 'node'}&period=1&port={p2p}&http={http}&ws={ws}"
        f"&authrpc={auth}"
    )
    backend = GethBackend(uri, scrypt_n=2**10)
    receiver = Account.create().address
    with backend:
        assert backend.w3.eth.get_balance(backend.faucet().address) > 0
        assert oct(os.stat(tmp_path / "node" / "sealer.pass").st_mode & 0o777) == "0o600"
        txm = TxManager(backend)
        transfer = {"to": receiver, "value": ETH, "gas": 21000}
        if backend.has(MINING_TOGGLE):
            txm.set_mining(False)
            assert not backend.is_mining()
            record = txm.send(backend.faucet(), transfer, "transfer")
            assert record.tx_hash in backend.pending_hashes()
            txm.set_mining(True)
            txm.wait(record, timeout=30)
            assert backend.peers() == []
        else:
            with pytest.raises(CapabilityMissing):
                backend.set_mining(False)
            txm.transact(backend.faucet(), transfer, "transfer", timeout=30)
        assert backend.w3.eth.get_balance(receiver) == ETH
        assert backend.status()["block_period"] == 1
    with backend:  # restarted on the same datadir
        assert backend.w3.eth.get_balance(receiver) == ETH
