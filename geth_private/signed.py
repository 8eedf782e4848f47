"""A transaction its owner signed elsewhere (a browser, a wallet, a script): decoded and checked."""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from geth_private.errors import ChainError


class BadSignedTransaction(ChainError, ValueError):
    """Bytes that are not a signed transaction this chain can take."""


@dataclass(frozen=True)
class SignedCall:
    """What a signed transaction does and who signed it, read from its bytes alone."""

    raw: bytes
    tx_hash: str
    sender: str
    nonce: int
    to: str | None
    value: int
    data: bytes
    gas: int
    chain_id: int | None


def decode_signed(raw: bytes | str) -> SignedCall:
    """A signed transaction's fields and signer (legacy or EIP-2718 typed); BadSignedTransaction."""
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw.removeprefix("0x"))
        except ValueError as err:
            raise BadSignedTransaction("a signed transaction is 0x-prefixed hex") from err
    if not raw:
        raise BadSignedTransaction("no signed transaction was given")
    try:
        sender = Account.recover_transaction(raw)
        fields = _fields(raw)
    except Exception as err:  # rlp, signature and type errors all mean "not a transaction"
        raise BadSignedTransaction(f"not a signed transaction: {err}") from err
    to = fields.get("to")
    return SignedCall(
        raw=raw,
        tx_hash="0x" + keccak(raw).hex(),
        sender=to_checksum_address(sender),
        nonce=int(fields["nonce"]),
        to=to_checksum_address(to) if to else None,
        value=int(fields.get("value", 0)),
        data=bytes(fields.get("data", b"")),
        gas=int(fields["gas"]),
        chain_id=int(fields["chainId"]) if fields.get("chainId") is not None else None,
    )


def _fields(raw: bytes) -> dict:
    if raw[0] < 0x7F:  # an EIP-2718 envelope: type byte first
        return dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
    nonce, gas_price, gas, to, value, data, v, _r, _s = rlp.decode(raw)
    v_int = int.from_bytes(v, "big")
    chain_id = (v_int - 35) // 2 if v_int >= 35 else None  # EIP-155
    return {"nonce": int.from_bytes(nonce, "big"), "gas": int.from_bytes(gas, "big"),
            "to": to or None, "value": int.from_bytes(value, "big"), "data": data,
            "chainId": chain_id, "gasPrice": int.from_bytes(gas_price, "big")}
