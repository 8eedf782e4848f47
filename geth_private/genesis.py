"""Genesis files for a private geth network: clique (geth ≤ 1.13) or post-merge (--dev, ≥ 1.14)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_utils import is_address

from geth_private.files import write_atomic

CLIQUE_EPOCH = 30_000  # blocks between clique checkpoints, geth's default
CLIQUE_VANITY = 32  # bytes of free-form vanity before the signer list in extraData
CLIQUE_SEAL = 65  # bytes reserved for the sealer's signature after the signer list

# Forks that geth activates by block number, in the order geth checks them.
BLOCK_FORKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
)
# Cancun's blob fee parameters (EIP-4844); geth ≥ 1.15 wants them spelled out in the config.
CANCUN_BLOB_SCHEDULE = {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}
ZERO_HASH = "0x" + "00" * 32


def clique_extra_data(signers: list[str]) -> str:
    """extraData naming the clique signers: 32 vanity bytes, the addresses, 65 seal bytes."""
    for signer in signers:
        if not is_address(signer):
            raise ValueError(f"{signer!r} is not an Ethereum address")
    addresses = "".join(s.lower().removeprefix("0x") for s in signers)
    return "0x" + "00" * CLIQUE_VANITY + addresses + "00" * CLIQUE_SEAL


def clique_signers(genesis: dict[str, Any]) -> list[str]:
    """The signers a clique genesis names in its extraData (lower-case 0x addresses)."""
    raw = str(genesis.get("extraData") or "0x").removeprefix("0x")
    count = (len(raw) // 2 - CLIQUE_VANITY - CLIQUE_SEAL) // 20
    body = raw[2 * CLIQUE_VANITY:]
    return ["0x" + body[40 * i:40 * (i + 1)].lower() for i in range(max(0, count))]


def make_genesis(
    chain_id: int,
    alloc: dict[str, int],
    *,
    signers: Sequence[str] | None,
    period: int = 5,
    gas_limit: int = 30_000_000,
) -> dict[str, Any]:
    """A geth genesis: clique sealed by `signers` (geth ≤ 1.13), or post-merge for --dev if None.

    Clique lets a signer seal at most one block in any floor(N/2)+1 in a row, so with two signers
    the chain halts while either is off; three keep going with one machine down.
    """
    if chain_id <= 0:
        raise ValueError("the chain id must be a positive integer")
    if period < 0:
        raise ValueError("the block period cannot be negative")
    for address, wei in alloc.items():
        if not is_address(address):
            raise ValueError(f"alloc key {address!r} is not an Ethereum address")
        if wei < 0:
            raise ValueError(f"alloc balance of {address} cannot be negative")
    config: dict[str, Any] = {"chainId": chain_id, **dict.fromkeys(BLOCK_FORKS, 0)}
    if signers is not None and not signers:
        raise ValueError("a clique genesis needs at least one signer")
    if signers is not None:
        # Pre-merge clique stops at London: geth's clique engine refuses any header once
        # shanghaiTime or cancunTime is reached ("clique does not support shanghai fork"), and a
        # terminalTotalDifficulty (with ...Passed) would mark the chain merged and stop sealing.
        config["clique"] = {"period": period, "epoch": CLIQUE_EPOCH}
        extra, difficulty = clique_extra_data(list(signers)), "0x1"
    else:
        # --dev (geth ≥ 1.14) reuses an initialised datadir only if the genesis is already
        # merged: terminalTotalDifficulty 0, ...Passed true, difficulty 0; then Shanghai, Cancun.
        config.update(
            terminalTotalDifficulty=0,
            terminalTotalDifficultyPassed=True,
            shanghaiTime=0,
            cancunTime=0,
            blobSchedule={"cancun": dict(CANCUN_BLOB_SCHEDULE)},
        )
        extra, difficulty = "0x", "0x0"
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "extraData": extra,
        "gasLimit": hex(gas_limit),
        "difficulty": difficulty,
        "mixHash": ZERO_HASH,
        "coinbase": "0x" + "00" * 20,
        "parentHash": ZERO_HASH,
        "alloc": {a.lower(): {"balance": hex(wei)} for a, wei in alloc.items()},
    }


def write_genesis(path: str | os.PathLike[str], genesis: dict[str, Any]) -> None:
    """Write a genesis as JSON (whole, then renamed), for `geth init` or a second machine."""
    write_atomic(Path(path), json.dumps(genesis, indent=2) + "\n")


def read_genesis(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a genesis JSON file; ValueError when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read genesis file {path}: {err}") from err
    if not isinstance(data, dict) or "config" not in data or "alloc" not in data:
        raise ValueError(f"{path} is not a geth genesis file (no config or alloc)")
    return data
