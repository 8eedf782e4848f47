"""What a geth node is asked to be: its binary and version, the capabilities per version,
the geth:// URI options, and the command line they make."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

from geth.types import GethKwargsTypedDict

from geth_private.backend import MINING_TOGGLE, PEERS, PERSISTENT, SINGLE_NODE, TXPOOL
from geth_private.errors import ChainError, ChainUnavailable

# URI grammar (every key optional; datadir defaults to <data_dir>/geth):
#   geth://?datadir=PATH&networkid=N&period=S&port=P&http=P&ws=P&authrpc=P
#          &peers=enode://ID@HOST:PORT,enode://…&genesis=PATH&extip=IP
DEFAULTS = {
    "networkid": 1337,
    "period": 5,
    "port": 30303,
    "http": 8545,
    "ws": 8546,
    "authrpc": 8551,
}
URI_KEYS = frozenset({"datadir", "peers", "genesis", "extip", *DEFAULTS})
MIN_VERSION = (1, 13, 0)
# geth 1.14.0 refused a merged-at-genesis chain at every --dev start on an initialised datadir
# ("genesis block difficulty must be > terminalTotalDifficulty": 0 against 0); go-ethereum
# c04b8e6d74 (#29579, cmd/utils/flags.go) made it require 0 and 0, before the 1.14.1 release.
DEV_GENESIS_FIXED = (1, 14, 1)
LAST_CLIQUE = (1, 13)  # geth 1.14 refuses pre-merge chains; from then on only --dev seals alone
LOOPBACK = "127.0.0.1"
KEYSTORE = "keystore"  # geth's keystore under the datadir: the sealer's key, never a user's
SEALER_PASS = "sealer.pass"
NOT_FOUND = "geth not found: install geth ≥ 1.13 or set GETH_BINARY"
_VERSION = re.compile(r"^Version:\s*(\d+)\.(\d+)\.(\d+)", re.MULTILINE)


def parse_version(output: str) -> tuple[int, int, int]:
    """(major, minor, patch) from the output of `geth version`."""
    match = _VERSION.search(output)
    if match is None:
        raise ChainUnavailable(
            "no 'Version:' line in the output of `geth version`: "
            "point GETH_BINARY at a geth ≥ 1.13 binary"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def uses_clique(version: tuple[int, int, int]) -> bool:
    """Whether this geth seals a private chain with clique (≤ 1.13) rather than --dev (≥ 1.14)."""
    return version[:2] <= LAST_CLIQUE


def capabilities_for(version: tuple[int, int, int]) -> frozenset[str]:
    """What a geth of this version can do for us; missing ones are reported, never faked."""
    if uses_clique(version):
        # No BLOCK_PERIOD: the clique period is fixed in the genesis; set_block_period cannot work.
        return frozenset({MINING_TOGGLE, TXPOOL, PEERS, PERSISTENT})
    # --dev seals unconditionally (no miner to stop) and turns peer-to-peer networking off:
    # one node, the operator's, makes every block.
    return frozenset({TXPOOL, PERSISTENT, SINGLE_NODE})


def find_geth() -> str:
    """The geth binary: GETH_BINARY if set, else `geth` on PATH."""
    named = os.environ.get("GETH_BINARY")
    if named:
        found = shutil.which(named)
        if found is None:
            raise ChainUnavailable(
                f"GETH_BINARY={named} is not an executable file: "
                "point it at a geth ≥ 1.13 binary or unset it to use geth from PATH"
            )
        return found
    found = shutil.which("geth")
    if found is None:
        raise ChainUnavailable(NOT_FOUND)
    return found


@dataclass(frozen=True)
class GethOptions:
    """What a geth:// URI asks for."""

    datadir: Path
    networkid: int = DEFAULTS["networkid"]
    period: int = DEFAULTS["period"]
    port: int = DEFAULTS["port"]
    http: int = DEFAULTS["http"]
    ws: int = DEFAULTS["ws"]
    authrpc: int = DEFAULTS["authrpc"]
    peers: tuple[str, ...] = ()
    genesis: Path | None = None
    extip: str | None = None  # the address other machines reach this node at (its enode's host)


def parse_geth_uri(uri: str, data_dir: str | None) -> GethOptions:
    """Read a geth:// URI; unknown keys and bad values are refused with what to write instead."""
    parsed = urlparse(uri)
    if parsed.netloc or parsed.path.strip("/"):
        raise ChainError(
            f"{uri!r}: geth:// starts a local node and takes only ?key=value options; "
            "to use a geth that is already running, give its http://host:port"
        )
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    unknown = sorted(set(query) - URI_KEYS)
    if unknown:
        raise ChainError(
            f"unknown geth:// option {', '.join(unknown)}: use {', '.join(sorted(URI_KEYS))}"
        )
    numbers: dict[str, Any] = {}
    for key in DEFAULTS:
        if key in query:
            try:
                numbers[key] = int(query[key])
            except ValueError:
                raise ChainError(
                    f"geth:// option {key}={query[key]!r} must be a whole number"
                ) from None
            if numbers[key] < 0 or (key != "period" and numbers[key] == 0):
                raise ChainError(f"geth:// option {key}={query[key]} is out of range")
    peers = tuple(p.strip() for p in query.get("peers", "").split(",") if p.strip())
    for peer in peers:
        if not peer.startswith("enode://") or "@" not in peer:
            raise ChainError(
                f"peer {peer!r} is not an enode URL: write enode://<node id>@host:port"
            )
    if query.get("datadir"):
        datadir = Path(query["datadir"]).expanduser()
    elif data_dir:
        datadir = Path(data_dir) / "geth"
    else:
        raise ChainError("geth:// needs somewhere to keep its chain: add ?datadir=/path to the URI")
    genesis = Path(query["genesis"]).expanduser() if query.get("genesis") else None
    extip = query.get("extip") or None
    if extip is not None:
        try:
            ipaddress.ip_address(extip)
        except ValueError:
            raise ChainError(f"geth:// option extip={extip!r} must be an IP address") from None
    return GethOptions(
        datadir=datadir.absolute(), peers=peers, genesis=genesis, extip=extip, **numbers
    )


def command_kwargs(
    binary: str,
    options: GethOptions,
    clique: bool,
    sealer: str | None,
    *,
    network_id: int | None = None,
    seal: bool = True,
) -> GethKwargsTypedDict:
    """py-geth's keyword form of our command line.

    `sealer` is this node's clique key (unlocked), `seal` whether it starts sealing (it is a
    signer), `network_id` the p2p network id: the genesis chain id, so every machine on one
    genesis agrees on it (peers with another id are dropped without an error on either side).
    """
    o = options
    password = str(o.datadir / SEALER_PASS)
    apis = "eth,net,web3,txpool,admin" + (",miner,clique" if clique else "")
    kwargs: GethKwargsTypedDict = {
        "geth_executable": binary,
        "nice": False,  # py-geth would nice -n 20 it; a sealer must keep its time slot
        "data_dir": str(o.datadir),
        "rpc_enabled": True,
        "rpc_addr": LOOPBACK,
        "rpc_port": str(o.http),
        "rpc_api": apis,
        "ws_enabled": True,
        "ws_addr": LOOPBACK,
        "ws_port": str(o.ws),
        "ws_api": apis,
        # We speak HTTP; a socket under a deep datadir can exceed the 108-byte path limit.
        "ipc_disable": True,
        "no_discover": True,  # peers come only from the URI's static list
        "verbosity": "3",
    }
    # Flags py-geth has no keyword for go in suffix_args (its suffix_kwargs is a dict that it
    # extends the command with, which adds the keys only).
    extra = ["--keystore", str(o.datadir / KEYSTORE)]
    extra += ["--authrpc.addr", LOOPBACK, "--authrpc.port", str(o.authrpc)]
    if clique:
        kwargs.update(network_id=str(network_id or o.networkid), port=str(o.port))
        extra += ["--syncmode", "full"]
        # geth's default --nat any asks a UPnP/NAT-PMP router for its public address (then the
        # enode names it) and to forward the p2p port from the internet; a private network
        # wants neither: this machine's LAN address if given, else none (the enode: 127.0.0.1).
        extra += ["--nat", f"extip:{o.extip}" if o.extip else "none"]
        if sealer is not None:
            # Clique signs blocks inside geth, so the sealer key must be unlocked there: the
            # one key that goes to the node. It is a dedicated account with no funds, never
            # a user's; geth refuses any unlock while HTTP is on without this flag, even on
            # loopback.
            kwargs["password"] = password
            extra += ["--unlock", sealer, "--allow-insecure-unlock"]
            extra += ["--miner.etherbase", sealer] + (["--mine"] if seal else [])
    else:
        # --dev takes the first keystore account (our sealer) as its block producer and
        # unlocks it with the first line of --password. --networkid is left out: --dev
        # has no peers, and geth ≥ 1.16 refuses it with --dev.
        kwargs.update(dev_mode=True, dev_period=str(o.period), password=password)
    kwargs["suffix_args"] = extra
    return kwargs
