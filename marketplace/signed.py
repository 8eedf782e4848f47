"""What owners sign, checked: bids (EIP-712) and transactions, read from their bytes alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from contracts.bindings import BID_FIELDS, bid_typed_data
from geth_private.signed import BadSignedTransaction, SignedCall, decode_signed
from marketplace import rules
from marketplace.errors import InvalidInput, NotAllowed

UINT64 = 2**64 - 1


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


def parse_bid(payload: object) -> dict[str, Any]:
    """A bid's fields as the buyer signed them (ints as numbers or decimal strings)."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("give the bid you signed as an object with " + ", ".join(BID_FIELDS))
    missing = [name for name in BID_FIELDS if name not in payload]
    if missing:
        raise InvalidInput(f"the signed bid lacks {', '.join(missing)}")
    bid: dict[str, Any] = {}
    for name in BID_FIELDS:
        if name in ("buyer", "seller"):
            bid[name] = rules.parse_address(payload[name], name)
        else:
            top = UINT64 if name == "expiry" else 2**256 - 1
            bid[name] = rules.parse_int(payload[name], name, 0, top)
    return bid


def bid_signer(chain_id: int, escrow: str, bid: Mapping[str, Any], signature: bytes) -> str:
    """The address whose key signed this bid in this escrow's EIP-712 domain."""
    message = encode_typed_data(full_message=bid_typed_data(chain_id, escrow, dict(bid)))
    try:
        return Account.recover_message(message, signature=signature)
    except Exception as err:  # malformed r/s/v: not a signature of anyone
        raise InvalidInput(f"the bid's signature cannot be read: {err}") from err


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
