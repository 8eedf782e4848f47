"""The committed artifacts load, name their compiler, and are not stale against the sources."""

from __future__ import annotations

import pytest
from web3 import Web3

import contracts
from contracts import ArtifactMissing, ContractsError, load_artifact, sources_sha256
from contracts.bindings import decode_revert

NAMES = ("EnergyToken", "EnergyEscrow", "IntervalSettlement")


@pytest.mark.parametrize("name", NAMES)
def test_artifact_loads_with_its_header(name):
    artifact = load_artifact(name)
    assert artifact.name == name
    assert artifact.compiler.startswith("0.8.37+")
    assert artifact.evm_version == "prague"
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 1000
    assert any(item.get("type") == "constructor" for item in artifact.abi)


@pytest.mark.parametrize("name", NAMES)
def test_artifacts_are_not_stale(name):
    """Fails when a .sol file changed without `npm run compile`."""
    assert sources_sha256() == load_artifact(name).sources_sha256, (
        "contracts/src changed since the artifacts were compiled: run `npm run compile`"
    )


def test_missing_artifact_says_what_to_do():
    with pytest.raises(ArtifactMissing, match="npm run compile") as info:
        load_artifact("NoSuchContract")
    assert isinstance(info.value, ContractsError) and isinstance(info.value, FileNotFoundError)


def test_sources_digest_changes_with_any_source(tmp_path, monkeypatch):
    for path in contracts.SOURCES.glob("*.sol"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(contracts, "SOURCES", tmp_path)
    before = sources_sha256()
    with (tmp_path / "EnergyToken.sol").open("a") as f:
        f.write("\n")
    assert sources_sha256() != before


def test_decode_revert_names_custom_and_builtin_errors():
    def encoded(signature: str, *words: int) -> bytes:
        return Web3.keccak(text=signature)[:4] + b"".join(w.to_bytes(32, "big") for w in words)

    assert decode_revert(None, encoded("DealNotOpen(uint256)", 9)) == "DealNotOpen(9)"
    assert decode_revert(None, encoded("Panic(uint256)", 0x11)) == "Panic(17)"
    assert decode_revert(None, "0x" + encoded("ZeroAmount()").hex()) == "ZeroAmount()"
    assert decode_revert(None, b"\x12\x34\x56\x78") is None
    assert decode_revert(None, encoded("DealNotOpen(uint256)")) == "DealNotOpen(?)"


def test_compile_check_agrees_with_committed_artifacts(compile_check):
    result = compile_check
    assert result.returncode == 0, result.stderr
