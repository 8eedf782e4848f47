"""Web3 contract objects from the artifacts, and custom-error decoding for revert data."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from web3 import Web3

from contracts import load_artifact

CONTRACTS = ("EnergyToken", "EnergyEscrow")


def contract(w3: Web3, name: str, address: str) -> Any:
    """A web3 contract object for a deployed contract."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name).abi)


@cache
def _errors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types) of every custom error of both ABIs."""
    found: dict[bytes, tuple[str, list[str]]] = {}
    for name in CONTRACTS:
        for item in load_artifact(name).abi:
            if item.get("type") != "error":
                continue
            types = [arg["type"] for arg in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            found[bytes(Web3.keccak(text=signature)[:4])] = (item["name"], types)
    return found


def decode_revert(w3: Web3 | None, data: bytes) -> str | None:
    """Revert data as "ErrorName(arg, ...)", or None when it is no known custom error."""
    known = _errors().get(bytes(data[:4]))
    if known is None:
        return None
    name, types = known
    try:
        args = abi_decode(types, bytes(data[4:]))
    except Exception:
        return f"{name}(?)"
    return f"{name}({', '.join(str(a) for a in args)})"
