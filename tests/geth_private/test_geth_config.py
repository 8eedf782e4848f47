"""The geth:// backend before a node runs: genesis, version, capabilities, URI, command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from geth.utils.validation import validate_genesis_data

from geth_private import backend_from_uri
from geth_private.backend import MINING_TOGGLE, PEERS, PERSISTENT, SINGLE_NODE, TXPOOL
from geth_private.errors import ChainError, ChainUnavailable
from geth_private.genesis import BLOCK_FORKS, make_genesis, read_genesis, write_genesis
from geth_private.geth import GethBackend
from geth_private.geth_config import NOT_FOUND, capabilities_for, parse_version

from .stand_ins import ETH, GETH_1_13_15, GETH_1_14_12, OPERATOR, SIGNER, backend_with, fake_geth


@pytest.fixture(params=[GETH_1_13_15, GETH_1_14_12], ids=["1.13", "1.14"])
def fake(request, tmp_path, monkeypatch) -> Path:
    """GETH_BINARY set to a fake geth of each version."""
    binary = fake_geth(tmp_path, request.param)
    monkeypatch.setenv("GETH_BINARY", str(binary))
    return binary


# -- genesis ---------------------------------------------------------------------------------


def test_clique_genesis_names_the_signer_and_stops_at_london():
    genesis = make_genesis(4242, {OPERATOR: 5 * ETH}, signers=[SIGNER], period=3)
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
    genesis = make_genesis(1337, {OPERATOR: ETH}, signers=None)
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
        make_genesis(1337, {}, signers=["0x1234"])
    with pytest.raises(ValueError, match="alloc key"):
        make_genesis(1337, {"bob": 1}, signers=[SIGNER])
    with pytest.raises(ValueError, match="positive"):
        make_genesis(0, {}, signers=[SIGNER])


def test_genesis_file_round_trip(tmp_path):
    genesis = make_genesis(1337, {OPERATOR: ETH}, signers=[SIGNER])
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
    # --dev is one node that makes every block: the operator's alone.
    assert capabilities_for((1, 14, 12)) == {TXPOOL, PERSISTENT, SINGLE_NODE}
    assert capabilities_for((1, 16, 1)) == {TXPOOL, PERSISTENT, SINGLE_NODE}


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
        "--http.api", "eth,net,web3,txpool,admin,miner,clique",
        "--ws",
        "--ws.addr", "127.0.0.1",
        "--ws.port", "8546",
        "--ws.api", "eth,net,web3,txpool,admin,miner,clique",
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
        "--nat", "none",
        "--unlock", SIGNER,
        "--allow-insecure-unlock",
        "--miner.etherbase", SIGNER,
        "--mine",
    ]  # fmt: skip


def test_clique_nat_is_the_lan_address_or_none(tmp_path, monkeypatch):
    """Never geth's default --nat any: it would map the p2p port on a UPnP router."""
    backend = backend_with(tmp_path, GETH_1_13_15, monkeypatch, "&extip=192.168.1.11")
    args = backend.process_args(SIGNER)
    assert args[args.index("--nat") + 1] == "extip:192.168.1.11"


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
