"""The seed's two machines as two network namespaces joined by a veth pair, each running its
node (a stand-in geth 1.13.15) through `gridbid chain`: the join dials the other machine's
address, not loopback, and loses its peer when that machine goes off.

Needs `ip netns` (iproute2) and the right to make namespaces (root or CAP_NET_ADMIN); skipped
with the reason otherwise. Every namespace and link is the test's own and is removed after it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from tests.common import wait_for

from .stand_ins import GETH_1_13_15, stand_in_geth

GRIDBID = [sys.executable, "-m", "web.cli"]


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_machines():
    """Two namespaces on one veth link: (name, address) of the producer's and the consumer's."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed: no network namespaces")
    tag = secrets.token_hex(3)
    names = [f"gb{tag}p", f"gb{tag}c"]
    subnet = f"10.{int(tag[:2], 16) % 200 + 20}.{int(tag[2:4], 16)}"
    made = _ip("netns", "add", names[0])
    if made.returncode:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        assert _ip("netns", "add", names[1]).returncode == 0
        veth = [f"v{tag}p", f"v{tag}c"]
        assert _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1]).returncode == 0
        machines = []
        for n, (ns, link) in enumerate(zip(names, veth, strict=True), start=1):
            address = f"{subnet}.{n}"
            for command in (
                ["link", "set", link, "netns", ns],
                ["-n", ns, "addr", "add", f"{address}/24", "dev", link],
                ["-n", ns, "link", "set", link, "up"],
                ["-n", ns, "link", "set", "lo", "up"],
            ):
                done = _ip(*command)
                assert done.returncode == 0, done.stderr
            machines.append((ns, address))
        yield machines
    finally:
        for ns in names:
            _ip("netns", "del", ns)


class Machine:
    """A data directory whose `gridbid chain` commands run inside one namespace."""

    def __init__(self, tmp_path, ns: str, address: str, env: dict):
        self.ns, self.address, self.env = ns, address, env
        self.data = tmp_path / ns
        self.uri = f"geth://?datadir={self.data / 'geth'}&extip={address}"
        self.node: subprocess.Popen | None = None

    def command(self, action: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *GRIDBID, "chain", action, "--chain", self.uri,
                "--data-dir", str(self.data), *args]

    def run(self, action: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(action, *args), capture_output=True, text=True,
                              timeout=60, env=self.env)

    def join(self, genesis, *args: str) -> None:
        # Its log to a file: a pipe nobody reads fills, and the node then hangs on a write.
        log = self.data.parent / f"{self.ns}-join.log"
        self.node = subprocess.Popen(self.command("join", "--genesis", str(genesis), *args),
                                     stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                                     env=self.env)
        line = self.node.stdout.readline()
        assert "running, RPC at" in line, line + log.read_text()

    def off(self) -> None:
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            self.node.wait(timeout=90)


def test_two_machines_peer_across_the_link(tmp_path, two_machines):
    env = {**os.environ, "GETH_BINARY": str(stand_in_geth(tmp_path, GETH_1_13_15)),
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.getcwd()}
    producer, consumer = (Machine(tmp_path, ns, address, env) for ns, address in two_machines)
    try:
        # Step 1: each machine its own signer key.
        keys = [m.run("keygen").stdout.strip() for m in (producer, consumer)]
        assert all(k.startswith("0x") for k in keys)
        # Step 2: the producer's machine makes the genesis naming both.
        assert producer.run("init", "--signers", ",".join(keys)).returncode == 0
        genesis = producer.data / "network-genesis.json"
        # Step 3: the producer's node runs; its enode names its link address, not loopback.
        producer.join(genesis)
        enode = producer.run("enode").stdout.strip()
        assert f"@{producer.address}:30303" in enode
        # Step 4: the consumer's machine joins across the link and dials it.
        consumer.join(genesis, "--peers", enode)
        wait_for(lambda: enode in consumer.run("peers").stdout, timeout=30,
                 what="the consumer to peer with the producer across the veth link")
        # Step 5: the producer's machine goes off: the consumer loses its only peer.
        producer.off()
        wait_for(lambda: consumer.run("peers").stdout.strip() == "", timeout=30,
                 what="the consumer to drop the peer that went off")
    finally:
        producer.off()
        consumer.off()
