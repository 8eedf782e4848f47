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


class ContractsError(Exception):
    """Base error of the contracts package."""


class ArtifactMissing(ContractsError, FileNotFoundError):
    """A compiled artifact is not there: the sources were never compiled."""


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation bytecode and where they came from."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: str
    evm_version: str
    sources_sha256: str


@cache
def load_artifact(name: str) -> Artifact:
    """The committed artifact of a contract, e.g. load_artifact("EnergyEscrow")."""
    path = ARTIFACTS / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ArtifactMissing(f"no artifact for {name}: run `npm run compile`") from err
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        compiler=data["compiler"],
        evm_version=data["evmVersion"],
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
