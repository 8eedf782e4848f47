"""Stand-ins for geth in the geth backend tests: `geth version` texts, fake binaries, ports."""

from __future__ import annotations

import json
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
GETH_1_14_0 = """Geth
Version: 1.14.0-stable
Architecture: amd64
Go Version: go1.22.2
Operating System: linux
GOPATH=
GOROOT=
"""
GETH_1_14_1 = """Geth
Version: 1.14.1-stable
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
import hashlib, json, os, re, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer

# geth stops on SIGINT (py-geth's stop sends it, then waits 30 s) even when it was started with
# SIGINT ignored, as every command a non-interactive shell sends to the background is: Python
# would then raise no KeyboardInterrupt, and each stop took the whole 30 s.
signal.signal(signal.SIGINT, signal.default_int_handler)

args = sys.argv[1:]
if args == ["version"]:
    print(VERSION, end="")
    sys.exit(0)
MINOR, PATCH = (int(p) for p in VERSION.split("Version: ")[1].split("-")[0].split(".")[1:3])
datadir = args[args.index("--datadir") + 1]
keyfile = os.path.join(datadir, "geth", "nodekey")


def node_key():  # node.New makes it (geth init too: node/node.go New), then keeps it
    if not os.path.exists(keyfile):
        with open(keyfile, "w") as fh:
            fh.write(os.urandom(32).hex())


if "init" in args:  # geth --datadir D init genesis.json: records which binary ran it
    os.makedirs(os.path.join(datadir, "geth", "chaindata"))
    node_key()
    with open(os.path.join(datadir, "init-by"), "w") as fh:
        fh.write(os.path.abspath(sys.argv[0]))
    sys.exit(0)
if os.path.exists(os.path.join(datadir, "fatal")):  # how geth dies: a Fatal line, code 1
    print("Fatal: " + open(os.path.join(datadir, "fatal")).read(), file=sys.stderr)
    sys.exit(1)
genesis = json.load(open(os.path.join(datadir, "genesis.json")))
if "--dev" in args and (MINOR, PATCH) == (14, 0):  # 1.14.0's check, fixed in 1.14.1
    print("Fatal: Bad developer-mode genesis configuration: genesis block difficulty must be "
          "> terminalTotalDifficulty", file=sys.stderr)
    sys.exit(1)
with open(os.path.join(datadir, "runs.json"), "a") as fh:
    fh.write(json.dumps(args) + "\\n")


def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default


node_key()
node_id = hashlib.sha512(open(keyfile).read().encode()).hexdigest()  # 64 bytes, as a pubkey
# geth ≥ 1.13.5 takes the genesis chain id when --networkid is absent (go-ethereum 4d9f3cd5d7)
network_id = int(flag("--networkid", genesis["config"]["chainId"]))
p2p_port = int(flag("--port", "30303"))
nat = flag("--nat", "any")  # extip:IP names IP; none, or any with no router here: 127.0.0.1
extip = nat.removeprefix("extip:") if nat.startswith("extip:") else "127.0.0.1"
extra = genesis.get("extraData", "0x")[2:]
genesis_signers = ["0x" + extra[64 + 40 * i:64 + 40 * (i + 1)]
                   for i in range(max(0, (len(extra) // 2 - 97) // 20))]
state = {"mining": "--mine" in args, "peers": {}, "wanted": [], "votes": {}}
ENODE = re.compile(r"^enode://([0-9a-f]{128})@([^:]+):(\\d+)(\\?.*)?$")


def hello():
    return json.dumps({"id": node_id, "networkid": network_id,
                       "genesis": genesis["config"]["chainId"]}).encode() + b"\\n"


def p2p():  # a line instead of RLPx: each side says its id and network id
    server = socket.create_server(("0.0.0.0", p2p_port))
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(hello())


def redial():  # as geth keeps redialling static peers; a peer on another network id never joins
    while True:
        for enode in list(state["wanted"]):
            match = ENODE.match(enode)
            try:
                with socket.create_connection((match[2], int(match[3])), timeout=0.5) as sock:
                    other = json.loads(sock.makefile().readline())
            except OSError:
                state["peers"].pop(enode, None)
                continue
            if other["networkid"] == network_id and other["id"] == match[1]:
                state["peers"][enode] = {"enode": enode, "id": other["id"]}
        time.sleep(0.2)


def authors():  # who sealed blocks 1..head, oldest first (a test's file); no blocks otherwise
    path = os.path.join(datadir, "authors.json")
    return [a.lower() for a in json.load(open(path))] if os.path.exists(path) else []


def signers():
    path = os.path.join(datadir, "signers.json")  # a vote's outcome a test wrote
    return json.load(open(path)) if os.path.exists(path) else genesis_signers


def answer(method, params):
    if method == "eth_chainId":
        return hex(genesis["config"]["chainId"])
    if method == "net_version":
        return str(network_id)
    if method == "web3_clientVersion":
        return "Geth/stand-in"
    if method == "eth_blockNumber":
        return hex(len(authors()))
    if method == "eth_getBalance":
        entry = genesis["alloc"].get(params[0].lower(), {"balance": "0x0"})
        return entry["balance"]
    if method in ("miner_start", "miner_stop"):
        state["mining"] = method == "miner_start"
        return None
    if method == "eth_mining":
        return state["mining"]
    if method == "admin_addPeer":
        if not ENODE.match(params[0]):
            raise ValueError("invalid enode: invalid public key (wrong length, want 128 hex chars)")
        state["wanted"].append(params[0])
        return True
    if method == "admin_peers":
        return list(state["peers"].values())
    if method == "admin_nodeInfo":
        return {"id": node_id, "enode": f"enode://{node_id}@{extip}:{p2p_port}?discport=0",
                "ports": {"discovery": 0, "listener": p2p_port}, "listenAddr": f"[::]:{p2p_port}"}
    if method == "txpool_content":  # geth 1.13.15's shape; the pool a test left in txpool.json
        pool = os.path.join(datadir, "txpool.json")
        return json.load(open(pool)) if os.path.exists(pool) else {"pending": {}, "queued": {}}
    if MINOR <= 13 and method == "clique_getSigners":
        return signers()
    if MINOR <= 13 and method == "clique_propose":
        state["votes"][params[0].lower()] = bool(params[1])
        return None
    if MINOR <= 13 and method == "clique_proposals":
        return state["votes"]
    if MINOR <= 13 and method == "clique_getSigner":  # block N's author (clique/api.go)
        return authors()[int(params[0], 16) - 1]
    if MINOR <= 13 and method == "clique_status":  # as geth 1.13.15's API.Status computes it:
        end = len(authors())  # blocks [end-64, end), the head itself left out, from block 1
        start, num = (1, end - 1) if end < 64 else (end - 64, 64)
        if end == 1:  # 0 blocks counted: inturnPercent is NaN, which encoding/json refuses
            raise ValueError("json: unsupported value: NaN")
        activity = dict.fromkeys(signers(), 0)  # geth lists every signer, 0 if idle
        for author in authors()[start - 1:end - 1]:
            activity[author] = activity.get(author, 0) + 1
        return {"inturnPercent": 100.0, "numBlocks": num, "sealerActivity": activity}
    raise KeyError(method)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {"jsonrpc": "2.0", "id": request["id"]}
        try:
            reply["result"] = answer(request["method"], request.get("params", []))
        except KeyError:
            reply["error"] = {"code": -32601, "message": "no such method"}
        except ValueError as err:
            reply["error"] = {"code": -32000, "message": str(err)}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if MINOR <= 13:  # --dev (1.14+) turns p2p off
    threading.Thread(target=p2p, daemon=True).start()
    threading.Thread(target=redial, daemon=True).start()
port = int(args[args.index("--http.port") + 1])
try:
    HTTPServer((flag("--http.addr", "127.0.0.1"), port), Handler).serve_forever()
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


def sealed_lately(datadir: Path, *signers: str) -> None:
    """Have the stand-in's chain be blocks the given signers sealed in turn (its authors file,
    enough of them that the last 2·N blocks the quorum check reads hold each of them)."""
    (datadir / "authors.json").write_text(json.dumps([*signers] * 8))


def enode_id(n: int) -> str:
    """A well-formed node id (128 hex digits) for enode URLs in tests."""
    return f"{n:02x}" * 64


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


def node_uri(datadir: Path, query: str = "") -> str:
    """A geth:// URI on datadir with four free ports (p2p, http, ws, authrpc)."""
    p2p, http, ws, auth = free_ports(4)
    return f"geth://?datadir={datadir}&port={p2p}&http={http}&ws={ws}&authrpc={auth}{query}"


def run_args(datadir: Path) -> list[list[str]]:
    """The command lines the stand-in geth ran on datadir, oldest first."""
    path = datadir / "runs.json"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
