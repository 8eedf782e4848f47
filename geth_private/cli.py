"""`gridbid chain …` and `gridbid accounts …`: the node and the keystore from a terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import time
from pathlib import Path

from eth_account import Account

from geth_private import network_cli as network
from geth_private.backend import PEERS
from geth_private.errors import ChainError, KeystoreError, WrongPassphrase
from geth_private.keystore import Keystore
from geth_private.uri import backend_from_uri

PIDFILE = "chain.json"


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the chain and accounts subcommands on the main parser."""
    chain = sub.add_parser(
        "chain", help="the chain node: init, start, stop, status, peers; keygen, join, enode"
    )
    chain.add_argument(
        "action",
        choices=["init", "start", "stop", "status", "peers", "keygen", "join", "enode"],
    )
    chain.add_argument("--chain", default="anvil://", help="chain URI (default anvil://)")
    chain.add_argument("--data-dir", default="var", help="where the node keeps its state")
    network.add_arguments(chain)
    chain.set_defaults(handler=chain_command)
    accounts = sub.add_parser("accounts", help="geth-format keystore: new, list, import")
    accounts.add_argument("action", choices=["new", "list", "import"])
    accounts.add_argument("source", nargs="?", help="import: a keystore file (or - for a hex key)")
    accounts.add_argument("--data-dir", default="var")
    accounts.add_argument("--password-file", help="read the passphrase from this file")
    accounts.add_argument("--scrypt-n", type=int, default=2**18, help=argparse.SUPPRESS)
    accounts.set_defaults(handler=accounts_command)


def chain_command(args: argparse.Namespace) -> int:
    """Run one `gridbid chain` action."""
    data = Path(args.data_dir)
    try:
        if args.action == "keygen":
            return network.keygen(args.chain, data)
        if args.action == "init" and args.signers:
            return network.init_network(args.chain, data, args)
        if args.action == "join":
            return _start(network.join_uri(args.chain, args), data)
        if args.action == "init":
            backend = backend_from_uri(args.chain, str(data))
            if hasattr(backend, "init"):
                print(f"initialised: genesis {backend.init()}")
            else:
                data.mkdir(parents=True, exist_ok=True)
                print(f"{args.chain} needs no initialisation; its state lives in {data}")
            return 0
        if args.action == "start":
            return _start(args.chain, data)
        if args.action == "stop":
            return _stop(data)
        backend = _connect(args.chain, data)
        if args.action == "enode":
            reply = backend.rpc_request("admin_nodeInfo", [])
            if "result" not in reply:
                print(f"{args.chain} does not report its enode: {reply.get('error')}",
                      file=sys.stderr)
                return 1
            return network.print_enode(reply["result"]["enode"])
        if args.action == "status":
            print(json.dumps(backend.status(), indent=1))
        elif not backend.has(PEERS):
            print(f"{backend.uri} does not report peers", file=sys.stderr)
            return 1
        else:
            for peer in backend.peers():
                print(peer.get("enode") or peer)
        return 0
    except ChainError as err:
        print(f"gridbid chain {args.action}: {err}", file=sys.stderr)
        return 1


def _start(uri: str, data: Path) -> int:
    """Run the node in the foreground until Ctrl+C, recording where it answers."""
    backend = backend_from_uri(uri, str(data))
    backend.start()
    url = backend.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    record = data / PIDFILE
    record.write_text(json.dumps({"pid": os.getpid(), "uri": uri, "url": url}))
    print(f"{uri} running, RPC at {url} (Ctrl+C or `gridbid chain stop` to stop)", flush=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        backend.stop()
        record.unlink(missing_ok=True)
    return 0


def _stop(data: Path) -> int:
    """Stop a node started by `gridbid chain start` on this data directory."""
    record = data / PIDFILE
    if not record.exists():
        print(f"no node started from {data} is running", file=sys.stderr)
        return 1
    pid = json.loads(record.read_text())["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        record.unlink(missing_ok=True)
        print(f"the node (pid {pid}) was already gone", file=sys.stderr)
        return 1
    for _ in range(60):
        if not record.exists():
            print("stopped")
            return 0
        time.sleep(0.5)
    print(f"pid {pid} did not stop within 30 s", file=sys.stderr)
    return 1


def running_node(data: Path, scheme: str | None = None) -> str | None:
    """The RPC URL of a node `gridbid chain start` runs on this data directory, if any
    (only one started from a `scheme` URI, e.g. "geth", when one is given)."""
    info = running_record(data, scheme)
    return None if info is None else info["url"]


def running_record(data: Path, scheme: str | None = None) -> dict | None:
    """What `gridbid chain start` (or `join`) recorded of the node it runs on this data
    directory (pid, the URI it started from, RPC url), if that node still runs."""
    record = data / PIDFILE
    if not record.exists():
        return None
    info = json.loads(record.read_text())
    if scheme is not None and not str(info.get("uri", "")).startswith(f"{scheme}:"):
        return None
    try:
        os.kill(info["pid"], 0)
    except (ProcessLookupError, PermissionError):
        return None
    return info


def _connect(uri: str, data: Path):
    managed = uri.split(":")[0] in ("anvil", "geth")  # nodes `gridbid chain start` runs
    url = running_node(data, uri.split(":")[0]) if managed else None
    if managed and url is None:
        raise ChainError(f"no {uri} node runs from {data}: start one with `gridbid chain start`")
    if url and uri.startswith("geth:"):
        # Through the datadir as well: the sealer's toggle, its signers and its enode.
        geth = network.geth_backend(uri, data)
        geth.attach(url)
        return geth
    backend = backend_from_uri(url or uri, str(data))
    backend.start()
    return backend


def accounts_command(args: argparse.Namespace) -> int:
    """Run one `gridbid accounts` action; passphrases are read, never stored or logged."""
    store = Keystore(Path(args.data_dir) / "keystore", args.scrypt_n)
    try:
        if args.action == "list":
            names = _names(Path(args.data_dir))
            for address in store.addresses():
                print(f"{address}  {names.get(address, '')}".rstrip())
            return 0
        if args.action == "new":
            print(store.new(_passphrase(args, confirm=True)))
            return 0
        return _import(store, args)
    except (KeystoreError, ValueError) as err:
        print(f"gridbid accounts {args.action}: {err}", file=sys.stderr)
        return 1


def _import(store: Keystore, args: argparse.Namespace) -> int:
    if not args.source:
        raise ValueError("give a keystore file to import, or - to type a hex private key")
    if args.source == "-":
        key = getpass.getpass("private key (hex): ").strip()
        account = Account.from_key(key)
        print(store.store(account, _passphrase(args, confirm=True)))
        return 0
    keyfile = json.loads(Path(args.source).read_text())
    passphrase = _passphrase(args)
    try:
        key = Account.decrypt(keyfile, passphrase)
    except ValueError as err:
        raise WrongPassphrase(f"cannot decrypt {args.source}: wrong passphrase?") from err
    # Re-encrypted with the same passphrase, so the file follows this keystore's KDF cost.
    print(store.store(Account.from_key(key), passphrase))
    return 0


def _passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    if args.password_file:
        return Path(args.password_file).read_text().rstrip("\n")
    first = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise ValueError("the passphrases differ")
    if not first:
        raise ValueError("an empty passphrase is not allowed")
    return first


def _names(data: Path) -> dict[str, str]:
    path = data / "accounts.json"
    if not path.exists():
        return {}
    return {address: name for name, address in json.loads(path.read_text()).items()}
