"""Solidity sources, their committed compiled artifacts, and the one loader that reads them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SOURCES = HERE / "src"
ARTIFACTS = HERE / "artifacts"

# One artifact set per EVM version a node of ours runs, oldest first (contracts/compile.js).
EVM_VERSIONS = ("london", "cancun", "prague")
DEFAULT_EVM = "prague"  # what the embedded py-evm chain (eth-tester's PragueVM) runs


class ContractsError(Exception):
    """Base error of the contracts package."""


class ArtifactMissing(ContractsError, FileNotFoundError):
    """A compiled artifact is not there: the sources were never compiled."""


class UnsupportedEvm(ContractsError, ValueError):
    """No artifact set is built for the EVM version asked for or found on a node."""


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation bytecode and where they came from."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: str
    evm_version: str
    openzeppelin: str
    sources_sha256: str


@cache
def load_artifact(name: str, evm_version: str = DEFAULT_EVM) -> Artifact:
    """The committed artifact of a contract in one set, e.g. load_artifact("EnergyEscrow")."""
    if evm_version not in EVM_VERSIONS:
        raise UnsupportedEvm(
            f"no artifact set for EVM {evm_version!r}: choose one of {', '.join(EVM_VERSIONS)}"
        )
    path = ARTIFACTS / evm_version / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ArtifactMissing(
            f"no {evm_version} artifact for {name}: run `npm run compile`"
        ) from err
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        compiler=data["compiler"],
        evm_version=data["evmVersion"],
        openzeppelin=data["openzeppelin"],
        sources_sha256=data["sourcesSha256"],
    )


def sources_sha256() -> str:
    """The digest compile.js records, computed over the .sol sources as they are now."""
    digest = hashlib.sha256()
    for path in sorted(SOURCES.glob("*.sol"), key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
