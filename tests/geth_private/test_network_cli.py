"""`gridbid chain keygen|init --signers|join|enode` run from a terminal on several machines
(each a data directory with a stand-in geth 1.13.15), and what `gridbid run` then finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from geth_private.cli import running_node
from geth_private.errors import ChainUnavailable
from geth_private.genesis import clique_signers, read_genesis
from geth_private.geth import OPERATOR_FUNDS
from tests.common import gridbid_here, wait_for
from web.runtime.chain import start_chain

from .stand_ins import GETH_1_13_15, node_uri, run_args, stand_in_geth

GRIDBID = [sys.executable, "-m", "web.cli"]


@pytest.fixture
def env(tmp_path):
    """The environment of each `gridbid` run: a stand-in geth 1.13.15 as GETH_BINARY."""
    binary = stand_in_geth(tmp_path, GETH_1_13_15)
    return {**os.environ, "GETH_BINARY": str(binary), "PYTHONUNBUFFERED": "1"}


def gridbid(env, *args):
    return gridbid_here(env, *args)


class Machine:
    """One machine: a data directory and the geth:// URI its node runs with."""

    def __init__(self, tmp_path, name: str):
        self.data = tmp_path / name
        self.uri = node_uri(self.data / "geth")
        self.node: subprocess.Popen | None = None

    def chain(self, env, action: str, *args):
        return gridbid(env, "chain", action, "--chain", self.uri, "--data-dir", str(self.data),
                       *args)

    def join(self, env, genesis, *args):
        # Its log to a file: a pipe nobody reads fills, and the node then hangs on a write.
        self.log = self.data.parent / f"{self.data.name}-join.log"
        self.node = subprocess.Popen(
            [*GRIDBID, "chain", "join", "--chain", self.uri, "--data-dir", str(self.data),
             "--genesis", str(genesis), *args],
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True, env=env,
        )
        line = self.node.stdout.readline()
        assert "running, RPC at http://127.0.0.1:" in line, line + self.log.read_text()

    def stop(self):
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            self.node.wait(timeout=90)


@pytest.fixture
def machines(tmp_path):
    made = [Machine(tmp_path, name) for name in ("producer", "consumer", "third")]
    yield made
    for machine in made:
        machine.stop()


def test_keygen_init_join_enode(machines, env):
    """The seed's flow: keys on each machine, one genesis, joins that dial the first node."""
    keys = []
    for machine in machines:
        made = machine.chain(env, "keygen")
        assert made.returncode == 0, made.stderr
        keys.append(made.stdout.strip())
        assert machine.chain(env, "keygen").stdout.strip() == keys[-1]  # kept, not remade
    producer, consumer, third = machines
    init = producer.chain(env, "init", "--signers", ",".join(keys), "--chain-id", "4242")
    assert init.returncode == 0, init.stderr
    genesis_path = producer.data / "network-genesis.json"
    genesis = read_genesis(genesis_path)
    assert clique_signers(genesis) == [k.lower() for k in keys]
    assert genesis["config"]["chainId"] == 4242
    (operator,) = genesis["alloc"]  # this machine's operator key, funded
    assert int(genesis["alloc"][operator]["balance"], 16) == OPERATOR_FUNDS

    producer.join(env, genesis_path)
    enode = producer.chain(env, "enode")
    assert enode.returncode == 0 and enode.stdout.startswith("enode://"), enode.stderr
    assert "extip=" in enode.stderr  # 127.0.0.1 is no address for the other machines
    for machine in (consumer, third):
        machine.join(env, genesis_path, "--peers", enode.stdout.strip())
        wait_for(lambda m=machine: m.chain(env, "peers").stdout.strip(), timeout=20,
                 what="the join to peer with the producer")
        args = run_args(machine.data / "geth")[-1]
        assert "--mine" in args and args[args.index("--networkid") + 1] == "4242"
        status = json.loads(machine.chain(env, "status").stdout)
        assert status["mining"] is True and "mining_toggle" in status["capabilities"]


def test_init_with_two_signers_warns(machines, env):
    producer, consumer, _ = machines
    keys = [m.chain(env, "keygen").stdout.strip() for m in (producer, consumer)]
    init = producer.chain(env, "init", "--signers", ",".join(keys))
    assert init.returncode == 0 and "stops whenever one machine is off" in init.stderr
    refused = producer.chain(env, "init", "--signers", "0x1234")
    assert refused.returncode == 1 and "gridbid chain keygen" in refused.stderr


def test_the_portal_shares_the_node_and_its_operator_key(machines, env, monkeypatch):
    """`gridbid chain join` then `gridbid run` on the producer's machine: one geth, funded key."""
    producer, consumer, _ = machines
    keys = [m.chain(env, "keygen").stdout.strip() for m in (producer, consumer)]
    producer.chain(env, "init", "--signers", ",".join(keys))
    genesis = producer.data / "network-genesis.json"
    producer.join(env, genesis)
    monkeypatch.setenv("GETH_BINARY", env["GETH_BINARY"])
    assert running_node(producer.data, "geth") and running_node(producer.data, "anvil") is None
    backend = start_chain(producer.uri, producer.data)
    try:
        assert backend.w3.eth.get_balance(backend.faucet().address) == OPERATOR_FUNDS
        assert backend.sealer() == keys[0]
    finally:
        backend.stop()
    assert len(run_args(producer.data / "geth")) == 1  # no second geth was started
    assert producer.node.poll() is None  # and the shared one still runs

    # The consumer's machine joined: no operator key, so no second portal (and contracts).
    consumer.join(env, genesis)
    with pytest.raises(ChainUnavailable, match="gridbid bridge --portal"):
        start_chain(consumer.uri, consumer.data)
    assert consumer.node.poll() is None
