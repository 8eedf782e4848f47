"""Web3 contract objects from the artifacts, and custom-error decoding for revert data."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account.messages import encode_typed_data
from web3 import Web3

from contracts import load_artifact

CONTRACTS = ("EnergyToken", "EnergyEscrow")

# Solidity's built-in revert payloads, decoded alongside the custom errors of both ABIs.
_BUILTIN_ERRORS = {"Error": ["string"], "Panic": ["uint256"]}


def contract(w3: Web3, name: str, address: str) -> Any:
    """A web3 contract object for a deployed contract."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name).abi)


def _selector(name: str, types: list[str]) -> bytes:
    return bytes(Web3.keccak(text=f"{name}({','.join(types)})")[:4])


@cache
def _errors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types) of every error both ABIs can revert with."""
    found = {_selector(name, types): (name, types) for name, types in _BUILTIN_ERRORS.items()}
    for name in CONTRACTS:
        for item in load_artifact(name).abi:
            if item.get("type") == "error":
                types = [arg["type"] for arg in item["inputs"]]
                found[_selector(item["name"], types)] = (item["name"], types)
    return found


def decode_revert(w3: Web3 | None, data: bytes | str) -> str | None:
    """Revert data (bytes or 0x-hex) as "ErrorName(arg, ...)", or None when it is unknown."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    known = _errors().get(bytes(data[:4]))
    if known is None:
        return None
    name, types = known
    try:
        args = abi_decode(types, bytes(data[4:]))
    except DecodingError:
        return f"{name}(?)"
    shown = (
        Web3.to_checksum_address(arg) if kind == "address" else arg
        for kind, arg in zip(types, args, strict=True)
    )
    return f"{name}({', '.join(str(a) for a in shown)})"


BID_TYPES = {
    "Bid": [
        {"name": "listingId", "type": "uint256"},
        {"name": "buyer", "type": "address"},
        {"name": "seller", "type": "address"},
        {"name": "priceWeiPerKWh", "type": "uint256"},
        {"name": "maxWh", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint64"},
    ]
}
BID_FIELDS = [field["name"] for field in BID_TYPES["Bid"]]


def bid_typed_data(chain_id: int, escrow: str, bid: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message a buyer signs for a bid (domain "gridbid EnergyEscrow" v1)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **BID_TYPES,
        },
        "primaryType": "Bid",
        "domain": {
            "name": "gridbid EnergyEscrow",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": Web3.to_checksum_address(escrow),
        },
        "message": {name: bid[name] for name in BID_FIELDS},
    }


def sign_bid(account: Any, chain_id: int, escrow: str, bid: dict[str, Any]) -> bytes:
    """A buyer's 65-byte signature of a bid, made with its own key (eth-account LocalAccount)."""
    message = encode_typed_data(full_message=bid_typed_data(chain_id, escrow, bid))
    return bytes(account.sign_message(message).signature)


def bid_tuple(bid: dict[str, Any]) -> tuple:
    """A bid as the tuple openDeal and hashBid take."""
    return tuple(bid[name] for name in BID_FIELDS)
