"""The geth:// backend: genesis, URI, version and capabilities, command line; a live node if any."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
from eth_account import Account
from geth.utils.validation import validate_genesis_data

from geth_private import TxManager, backend_from_uri
from geth_private.backend import MINING_TOGGLE, PEERS, PERSISTENT, TXPOOL
from geth_private.errors import CapabilityMissing, ChainError, ChainUnavailable
from geth_private.genesis import BLOCK_FORKS, make_genesis, read_genesis, write_genesis
from geth_private.geth import (
    NOT_FOUND,
    OPERATOR_FUNDS,
    GethBackend,
    capabilities_for,
    parse_version,
)
from geth_private.keystore import Keystore

ETH = 10**18
SIGNER = "0x7Df9a875a174b3bc565E6424A0050eBC1B2D1D82"
OPERATOR = "0x1111111111111111111111111111111111111111"

# What `geth version` prints, for the last clique release and a --dev-only one.
GETH_1_13_15 = """Geth
Version: 1.13.15-stable
Git Commit: c5ba367eb6232e3eddd7d6226bfd374449c63164
Git Commit Date: 20240417
Architecture: amd64
Go Version: go1.22.2
Operating System: linux
GOPATH=
GOROOT=
"""
GETH_1_14_12 = """Geth
Version: 1.14.12-stable
Git Commit: 293a300d64be3d9a1c2cc92c26fa5a0f3ef8b8e9
Git Commit Date: 20241119
Architecture: amd64
Go Version: go1.23.3
Operating System: linux
GOPATH=
GOROOT=
"""


def fake_geth(tmp_path: Path, version_output: str) -> Path:
    """An executable that answers `geth version` like geth and refuses everything else."""
    path = tmp_path / "bin" / "geth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then cat <<"EOF"\n'
        f"{version_output}EOF\nexit 0\nfi\n"
        'echo "fake geth cannot run: $*" >&2\nexit 1\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(params=[GETH_1_13_15, GETH_1_14_12], ids=["1.13", "1.14"])
def fake(request, tmp_path, monkeypatch) -> Path:
    """GETH_BINARY set to a fake geth of each version."""
    binary = fake_geth(tmp_path, request.param)
    monkeypatch.setenv("GETH_BINARY", str(binary))
    return binary


def backend_with(tmp_path: Path, version_output: str, monkeypatch, query: str = "") -> GethBackend:
    monkeypatch.setenv("GETH_BINARY", str(fake_geth(tmp_path, version_output)))
    return GethBackend(f"geth://?datadir={tmp_path / 'node'}{query}")


# -- genesis ---------------------------------------------------------------------------------


def test_clique_genesis_names_the_signer_and_stops_at_london():
    genesis = make_genesis(4242, {OPERATOR: 5 * ETH}, signer=SIGNER, period=3)
    config = genesis["config"]
    assert config["chainId"] == 4242
    assert config["clique"] == {"period": 3, "epoch": 30000}
    assert all(config[fork] == 0 for fork in BLOCK_FORKS)
    assert config["londonBlock"] == 0
    # geth's clique refuses Shanghai/Cancun headers, and a passed TTD stops sealing.
    assert not {"shanghaiTime", "cancunTime", "terminalTotalDifficulty"} & set(config)
    extra = genesis["extraData"]
    assert extra == "0x" + "00" * 32 + SIGNER[2:].lower() + "00" * 65
    assert len(bytes.fromhex(extra[2:])) == 32 + 20 + 65
    assert genesis["alloc"] == {OPERATOR: {"balance": hex(5 * ETH)}}
    assert genesis["gasLimit"] == hex(30_000_000)
    validate_genesis_data(genesis)  # what py-geth's initialize_chain checks before `geth init`


def test_dev_genesis_is_merged_from_block_zero():
    genesis = make_genesis(1337, {OPERATOR: ETH}, signer=None)
    config = genesis["config"]
    assert "clique" not in config
    assert config["terminalTotalDifficulty"] == 0
    assert config["terminalTotalDifficultyPassed"] is True
    assert config["shanghaiTime"] == 0 and config["cancunTime"] == 0
    assert genesis["difficulty"] == "0x0"
    assert genesis["alloc"][OPERATOR]["balance"] == "0xde0b6b3a7640000"
    validate_genesis_data(genesis)


def test_genesis_refuses_bad_input():
    with pytest.raises(ValueError, match="not an Ethereum address"):
        make_genesis(1337, {}, signer="0x1234")
    with pytest.raises(ValueError, match="alloc key"):
        make_genesis(1337, {"bob": 1}, signer=SIGNER)
    with pytest.raises(ValueError, match="positive"):
        make_genesis(0, {}, signer=SIGNER)


def test_genesis_file_round_trip(tmp_path):
    genesis = make_genesis(1337, {OPERATOR: ETH}, signer=SIGNER)
    write_genesis(tmp_path / "shared" / "genesis.json", genesis)
    assert read_genesis(tmp_path / "shared" / "genesis.json") == genesis
    (tmp_path / "other.json").write_text("[]")
    with pytest.raises(ValueError, match="not a geth genesis"):
        read_genesis(tmp_path / "other.json")


# -- version and capabilities ----------------------------------------------------------------


def test_version_parsing():
    assert parse_version(GETH_1_13_15) == (1, 13, 15)
    assert parse_version(GETH_1_14_12) == (1, 14, 12)
    with pytest.raises(ChainUnavailable, match="GETH_BINARY"):
        parse_version("anvil 0.2.0\n")


def test_capabilities_per_version():
    assert capabilities_for((1, 13, 15)) == {MINING_TOGGLE, TXPOOL, PEERS, PERSISTENT}
    assert capabilities_for((1, 14, 12)) == {TXPOOL, PERSISTENT}
    assert capabilities_for((1, 16, 1)) == {TXPOOL, PERSISTENT}


def test_version_is_asked_of_the_binary(fake, tmp_path):
    backend = GethBackend(f"geth://?datadir={tmp_path / 'node'}")
    assert backend.capabilities == frozenset()  # unknown until the binary is asked
    version = backend.version()
    assert version in {(1, 13, 15), (1, 14, 12)}
    assert backend.capabilities == capabilities_for(version)
    assert backend.binary() == str(fake)


def test_too_old_a_geth_is_refused(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_13_15.replace("1.13.15", "1.12.2"), monkeypatch)
    with pytest.raises(ChainUnavailable, match="too old: geth not found: install geth ≥ 1.13"):
        backend.version()


def test_missing_binary_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("GETH_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no geth anywhere
    backend = backend_from_uri(f"geth://?datadir={tmp_path / 'node'}")
    with pytest.raises(ChainUnavailable) as caught:
        backend.start()
    assert (
        str(caught.value) == NOT_FOUND == ("geth not found: install geth ≥ 1.13 or set GETH_BINARY")
    )
    monkeypatch.setenv("GETH_BINARY", str(tmp_path / "nowhere" / "geth"))
    with pytest.raises(ChainUnavailable, match="GETH_BINARY=.* is not an executable"):
        GethBackend(f"geth://?datadir={tmp_path / 'node'}").version()


# -- URI -------------------------------------------------------------------------------------


def test_uri_picks_the_geth_backend(tmp_path):
    backend = backend_from_uri(
        f"geth://?datadir={tmp_path}/chain&networkid=99&period=2&port=30400&http=9545"
        "&peers=enode://ab@10.0.0.2:30303,enode://cd@10.0.0.3:30303"
    )
    assert isinstance(backend, GethBackend)
    o = backend.options
    assert (o.datadir, o.networkid, o.period, o.port, o.http) == (
        tmp_path / "chain",
        99,
        2,
        30400,
        9545,
    )
    assert o.ws == 8546 and o.authrpc == 8551
    assert o.peers == ("enode://ab@10.0.0.2:30303", "enode://cd@10.0.0.3:30303")


def test_uri_defaults_the_datadir_under_data_dir(tmp_path):
    backend = backend_from_uri("geth://", str(tmp_path))
    assert backend.options.datadir == tmp_path / "geth"
    assert backend.options.networkid == 1337 and backend.options.period == 5


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("geth://", "add \\?datadir="),
        ("geth://?datadir=/x&peer=enode://a@b:1", "unknown geth:// option peer"),
        ("geth://?datadir=/x&period=fast", "must be a whole number"),
        ("geth://?datadir=/x&http=0", "out of range"),
        ("geth://?datadir=/x&peers=10.0.0.2:30303", "not an enode URL"),
        ("geth://10.0.0.2:8545", "give its http://host:port"),
    ],
)
def test_bad_uris_say_what_to_write(uri, message):
    with pytest.raises(ChainError, match=message):
        GethBackend(uri)


# -- command line ------------------------------------------------------------------------------


def test_clique_command_line(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_13_15, monkeypatch, "&networkid=4242&period=2")
    node = tmp_path / "node"
    assert backend.process_args(SIGNER) == [
        str(tmp_path / "bin" / "geth"),
        "--http",
        "--http.addr", "127.0.0.1",
        "--http.port", "8545",
        "--http.api", "eth,net,web3,txpool,admin,miner",
        "--ws",
        "--ws.addr", "127.0.0.1",
        "--ws.port", "8546",
        "--ws.api", "eth,net,web3,txpool,admin,miner",
        "--datadir", str(node),
        "--networkid", "4242",
        "--port", "30303",
        "--ipcdisable",
        "--verbosity", "3",
        "--password", str(node / "sealer.pass"),
        "--nodiscover",
        "--keystore", str(node / "keystore"),
        "--authrpc.addr", "127.0.0.1",
        "--authrpc.port", "8551",
        "--syncmode", "full",
        "--unlock", SIGNER,
        "--allow-insecure-unlock",
        "--mine",
        "--miner.etherbase", SIGNER,
    ]  # fmt: skip


def test_joined_clique_node_does_not_seal(tmp_path, monkeypatch):
    args = backend_with(tmp_path, GETH_1_13_15, monkeypatch).process_args(None)
    assert not {"--mine", "--unlock", "--password", "--allow-insecure-unlock"} & set(args)
    assert "--nodiscover" in args and "--networkid" in args


def test_dev_command_line(tmp_path, monkeypatch):
    backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch, "&period=0")
    args = backend.process_args(SIGNER)
    node = tmp_path / "node"
    assert args[:4] == [str(tmp_path / "bin" / "geth"), "--dev", "--dev.period", "0"]
    assert args[args.index("--datadir") + 1] == str(node)
    assert args[args.index("--password") + 1] == str(node / "sealer.pass")
    # --dev has no peers (and geth ≥ 1.16 refuses --networkid with it); no miner to start.
    for absent in ("--networkid", "--port", "--mine", "--unlock", "--allow-insecure-unlock"):
        assert absent not in args
    assert args[args.index("--http.api") + 1] == "eth,net,web3,txpool,admin"


def test_rpc_listens_on_loopback_only(fake, tmp_path):
    args = GethBackend(f"geth://?datadir={tmp_path / 'node'}").process_args(SIGNER)
    for flag in ("--http.addr", "--ws.addr", "--authrpc.addr"):
        assert args[args.index(flag) + 1] == "127.0.0.1"
    assert "0.0.0.0" not in args and "--nodiscover" in args
    assert "nice" not in args


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
    write_genesis(backend.genesis_path, make_genesis(1337, {}, signer=SIGNER))
    with pytest.raises(ChainError, match="made for clique \\(geth 1.13\\)"):
        backend.start()


def test_port_in_use_is_reported(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        backend = backend_with(tmp_path, GETH_1_14_12, monkeypatch, f"&http={port}")
        (tmp_path / "node" / "geth" / "chaindata").mkdir(parents=True)
        write_genesis(backend.genesis_path, make_genesis(1337, {}, signer=None))
        with pytest.raises(ChainUnavailable, match=f"127.0.0.1:{port} is already in use"):
            backend.start()


# -- start/stop plumbing against a stand-in geth --------------------------------------------

STAND_IN = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

args = sys.argv[1:]
if args == ["version"]:
    print(VERSION, end="")
    sys.exit(0)
datadir = args[args.index("--datadir") + 1]
if "init" in args:  # geth --datadir D init genesis.json
    os.makedirs(os.path.join(datadir, "geth", "chaindata"))
    sys.exit(0)
if os.path.exists(os.path.join(datadir, "fatal")):  # how geth dies: a Fatal line, code 1
    print("Fatal: " + open(os.path.join(datadir, "fatal")).read(), file=sys.stderr)
    sys.exit(1)
genesis = json.load(open(os.path.join(datadir, "genesis.json")))
with open(os.path.join(datadir, "runs.json"), "a") as fh:
    fh.write(json.dumps(args) + "\\n")
state = {"mining": "--mine" in args, "peers": []}


def answer(method, params):
    if method == "eth_chainId":
        return hex(genesis["config"]["chainId"])
    if method == "web3_clientVersion":
        return "Geth/stand-in"
    if method == "eth_blockNumber":
        return "0x0"
    if method == "eth_getBalance":
        entry = genesis["alloc"].get(params[0].lower(), {"balance": "0x0"})
        return entry["balance"]
    if method in ("miner_start", "miner_stop"):
        state["mining"] = method == "miner_start"
        return None
    if method == "eth_mining":
        return state["mining"]
    if method == "admin_addPeer":
        state["peers"].append(params[0])
        return True
    if method == "txpool_content":  # geth 1.13.15's shape; the pool a test left in txpool.json
        pool = os.path.join(datadir, "txpool.json")
        return json.load(open(pool)) if os.path.exists(pool) else {"pending": {}, "queued": {}}
    raise KeyError(method)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {"jsonrpc": "2.0", "id": request["id"]}
        try:
            reply["result"] = answer(request["method"], request.get("params", []))
        except KeyError:
            reply["error"] = {"code": -32601, "message": "no such method"}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


port = int(args[args.index("--http.port") + 1])
try:
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
except KeyboardInterrupt:  # py-geth stops geth with SIGINT first
    sys.exit(0)
"""


def stand_in_geth(tmp_path: Path, version_output: str) -> Path:
    """A Python stand-in for geth: version, init, and a few JSON-RPC methods over HTTP."""
    path = tmp_path / "bin" / "geth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nVERSION = {version_output!r}\n{STAND_IN}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


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
    assert not _answers(http)
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
    write_genesis(node / "genesis.json", make_genesis(1337, {}, signer=None))
    (node / "fatal").write_text("database already contains an incompatible genesis block")
    with pytest.raises(ChainUnavailable, match="(?s)exited while starting.*incompatible genesis"):
        backend.start()
    assert not _answers(http)
    (node / "genesis.json").unlink()
    with pytest.raises(ChainError, match="no readable genesis.json"):
        backend.start()


def pool_tx(sender: str, nonce: int, tx_hash: str) -> dict:
    """One transaction as geth 1.13.15's txpool_content lists it (an RPCTransaction)."""
    return {
        "blockHash": None, "blockNumber": None, "from": sender, "gas": "0x5208",
        "gasPrice": "0x77359401", "maxFeePerGas": "0x77359401",
        "maxPriorityFeePerGas": "0x3b9aca00",
        "hash": tx_hash, "input": "0x", "nonce": hex(nonce),
        "to": "0x2222222222222222222222222222222222222222", "transactionIndex": None,
        "value": "0xde0b6b3a7640000", "type": "0x2", "accessList": [], "chainId": "0x539",
        "v": "0x1", "r": "0x" + "ab" * 32, "s": "0x" + "cd" * 32, "yParity": "0x1",
    }


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


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- a real node (GETH_BINARY) ---------------------------------------------------------------

real_geth = pytest.mark.skipif(
    not os.environ.get("GETH_BINARY"),
    reason="set GETH_BINARY to a geth ≥ 1.13 binary to run the geth backend tests",
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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
