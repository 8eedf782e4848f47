"""What owners sign, checked: offers and bids (EIP-712) and transactions, read from their
bytes alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from contracts.bindings import BID_TYPES, OFFER_TYPES, bid_typed_data, offer_typed_data
from contracts.eip712 import recover, signable
from geth_private.signed import BadSignedTransaction, SignedCall, decode_signed
from marketplace import rules
from marketplace.errors import InvalidInput, NotAllowed


def signature_bytes(signature: object) -> bytes:
    """A 65-byte signature given as 0x-hex (or bytes), or InvalidInput."""
    if isinstance(signature, bytes | bytearray):
        raw = bytes(signature)
    elif isinstance(signature, str) and signature.startswith("0x"):
        try:
            raw = bytes.fromhex(signature[2:])
        except ValueError:
            raw = b""
    else:
        raw = b""
    if len(raw) != 65:
        raise InvalidInput("a signature is 65 bytes as 0x-prefixed hex")
    return raw


def parse_typed(payload: object, fields: list[dict[str, str]], what: str) -> dict[str, Any]:
    """An EIP-712 message's fields as its owner signed them, typed: addresses checksummed,
    uints as ints (numbers or decimal strings, in their type's range), bytes32 as bytes."""
    names = [field["name"] for field in fields]
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"give the {what} you signed as an object with " + ", ".join(names))
    missing = [name for name in names if name not in payload]
    if missing:
        raise InvalidInput(f"the signed {what} lacks {', '.join(missing)}")
    parsed: dict[str, Any] = {}
    for field in fields:
        name, kind, value = field["name"], field["type"], payload[field["name"]]
        if kind == "address":
            parsed[name] = rules.parse_address(value, name)
        elif kind == "bytes32":
            parsed[name] = _bytes32(value, name)
        else:
            parsed[name] = rules.parse_int(value, name, 0, 2 ** int(kind.removeprefix("uint")) - 1)
    return parsed


def _bytes32(value: object, name: str) -> bytes:
    """32 bytes given as 0x-hex (a hash), or InvalidInput."""
    raw = b""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raw = b""
    if len(raw) != 32:
        raise InvalidInput(f"{name} must be 32 bytes as 0x-prefixed hex")
    return raw


def parse_bid(payload: object) -> dict[str, Any]:
    """A bid's fields as the buyer signed them (ints as numbers or decimal strings)."""
    return parse_typed(payload, BID_TYPES["Bid"], "bid")


def parse_offer(payload: object) -> dict[str, Any]:
    """An offer's fields as the seller signed them (ints as numbers or decimal strings)."""
    return parse_typed(payload, OFFER_TYPES["Offer"], "offer")


def stored_offer(text: str) -> dict[str, Any]:
    """A listing's stored offer JSON as the typed values openDeal takes."""
    return parse_offer(json.loads(text))


def as_json(message: Mapping[str, Any]) -> dict[str, Any]:
    """An EIP-712 message as JSON carries it: ints as decimal strings, bytes as 0x-hex."""
    return {k: str(v) if isinstance(v, int) else "0x" + v.hex() if isinstance(v, bytes) else v
            for k, v in message.items()}


def page_terms(full_message: dict[str, Any]) -> dict[str, Any]:
    """Typed data for a page to sign: without the domain's type (ethers adds it), values as
    JSON carries them."""
    typed = {**full_message, "types": dict(full_message["types"])}
    typed["types"].pop("EIP712Domain", None)
    typed["message"] = as_json(full_message["message"])
    return typed


def typed_signer(full_message: dict[str, Any], signature: bytes, what: str) -> str:
    """The address whose key signed a full EIP-712 message, or InvalidInput."""
    try:
        return recover(signable(full_message), signature)
    except Exception as err:  # malformed r/s/v: not a signature of anyone
        raise InvalidInput(f"the {what}'s signature cannot be read: {err}") from err


def bid_signer(chain_id: int, escrow: str, bid: Mapping[str, Any], signature: bytes) -> str:
    """The address whose key signed this bid in this escrow's EIP-712 domain."""
    return typed_signer(bid_typed_data(chain_id, escrow, dict(bid)), signature, "bid")


def offer_signer(chain_id: int, escrow: str, offer: Mapping[str, Any], signature: bytes) -> str:
    """The address whose key signed this offer in this escrow's EIP-712 domain."""
    return typed_signer(offer_typed_data(chain_id, escrow, dict(offer)), signature, "offer")


def signed_call(raw: object, what: str = "transaction") -> SignedCall:
    """A signed transaction given as 0x-hex, decoded, or InvalidInput."""
    if isinstance(raw, SignedCall):
        return raw
    if not isinstance(raw, str | bytes):
        raise InvalidInput(f"give the signed {what} as 0x-prefixed hex")
    try:
        return decode_signed(raw)
    except BadSignedTransaction as err:
        raise InvalidInput(f"the signed {what} is not usable: {err}") from err


def check_signed_by(call: SignedCall, owner: str, chain_id: int, what: str) -> None:
    """The signed transaction is the owner's own and for this chain (else refused)."""
    if call.sender != owner:
        raise NotAllowed(f"the {what} is signed by {call.sender}, not by you ({owner})")
    if call.chain_id != chain_id:
        # Without EIP-155 (no chain id) the same bytes are valid on every chain: refused too.
        raise InvalidInput(f"the {what} is signed for chain {call.chain_id}, not {chain_id}")


def prepared(tx: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A transaction to sign as JSON carries it: integers as decimal strings."""
    shown = {k: str(v) if isinstance(v, int) and k not in ("type",) else v for k, v in tx.items()}
    return {"tx": shown, "label": label, "needed": True}
