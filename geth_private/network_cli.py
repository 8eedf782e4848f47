"""`gridbid chain keygen|init --signers|join|enode`: one clique network over several machines.

Each machine makes its signer key, one machine (the portal's) makes the genesis naming them
all, every machine joins from that file, and each later machine dials the earlier ones' enodes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

from eth_utils import is_address, to_checksum_address

from geth_private.errors import ChainError
from geth_private.genesis import write_genesis
from geth_private.geth import GethBackend
from geth_private.uri import backend_from_uri

NETWORK_GENESIS = "network-genesis.json"  # what `chain init --signers` writes, to copy around


def add_arguments(chain: argparse.ArgumentParser) -> None:
    """The options of the network actions on `gridbid chain`."""
    chain.add_argument("--signers", help="init: comma-separated signer addresses (one per "
                                         "machine, from `gridbid chain keygen`); three keep "
                                         "the chain going with one machine off")
    chain.add_argument("--chain-id", type=int, help="init --signers: the network's chain id "
                                                    "(default the URI's networkid)")
    chain.add_argument("--out", help=f"init --signers: where to write the genesis (default "
                                     f"<data-dir>/{NETWORK_GENESIS})")
    chain.add_argument("--genesis", help="join: the network's genesis file")
    chain.add_argument("--peers", help="join: comma-separated enode URLs of machines already "
                                       "running (`gridbid chain enode` prints one)")


def geth_backend(uri: str, data: Path) -> GethBackend:
    """The geth:// backend of a network action; other chains have no signers or peers."""
    backend = backend_from_uri(uri, str(data))
    if not isinstance(backend, GethBackend):
        raise ChainError(f"{uri} is not a geth:// node: signer keys, genesis and peers are "
                         "geth's (give --chain 'geth://?datadir=…')")
    return backend


def keygen(uri: str, data: Path) -> int:
    """Make this machine's signer key (or keep the one it has) and print its address."""
    print(geth_backend(uri, data).own_key(create=True))
    return 0


def init_network(uri: str, data: Path, args: argparse.Namespace) -> int:
    """Write the clique genesis naming every machine's signer; fund this machine's operator."""
    signers = [s.strip() for s in args.signers.split(",") if s.strip()]
    for signer in signers:
        if not is_address(signer):
            raise ChainError(f"signer {signer!r} is not an address: give what `gridbid chain "
                             "keygen` printed on each machine")
    backend = geth_backend(uri, data)
    genesis = backend.network_genesis([to_checksum_address(s) for s in signers], args.chain_id)
    out = Path(args.out) if args.out else data / NETWORK_GENESIS
    write_genesis(out, genesis)
    print(f"genesis for {len(signers)} signers, chain id {genesis['config']['chainId']}: {out}")
    if len(signers) < 3:
        print(f"note: with {len(signers)} signer(s) the chain stops whenever one machine is "
              "off, and no machine may stop its sealing; three keep going with one off",
              file=sys.stderr)
    print("copy it to every machine and run `gridbid chain join --genesis FILE` there "
          "(this machine too: it runs the portal)")
    return 0


def join_uri(uri: str, args: argparse.Namespace) -> str:
    """The URI with the genesis and the peers of a join added (replacing the URI's own)."""
    if not args.genesis:
        raise ChainError("join needs --genesis FILE: the network's genesis from `gridbid chain "
                         "init --signers` on the portal's machine")
    parsed = urlparse(uri)
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    query["genesis"] = str(Path(args.genesis).absolute())
    if args.peers:
        query["peers"] = args.peers
    return parsed._replace(query=urlencode(query, safe="/:@,")).geturl()


def print_enode(enode: str) -> int:
    """Print the node's enode; say when other machines could not reach the address in it."""
    print(enode)
    if "@127.0.0.1:" in enode:
        print("note: the enode names 127.0.0.1; add extip=<this machine's LAN address> to the "
              "geth:// URI so the other machines can dial it", file=sys.stderr)
    return 0
