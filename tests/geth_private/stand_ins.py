"""Stand-ins for geth in the geth backend tests: `geth version` texts, fake binaries, ports."""

from __future__ import annotations

import socket
import stat
import sys
from pathlib import Path

from geth_private.geth import GethBackend

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


def backend_with(tmp_path: Path, version_output: str, monkeypatch, query: str = "") -> GethBackend:
    """A GethBackend on tmp_path/node whose GETH_BINARY is a fake geth of that version."""
    monkeypatch.setenv("GETH_BINARY", str(fake_geth(tmp_path, version_output)))
    return GethBackend(f"geth://?datadir={tmp_path / 'node'}{query}")


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


def free_ports(count: int) -> list[int]:
    """`count` loopback ports nobody listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def answers(port: int) -> bool:
    """Whether something listens on the loopback port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
