"""EIP-712 signables of the flat structs gridbid signs, hashed directly with a cached domain.

eth-account's encode_typed_data walks the type tree, validates every value through eth-abi
and hashes the domain again for each message: ~1 ms a bid, and every bid is checked once and
its terms built once. The structs signed here (Bid, Offer, Reading, MeterConsent, Permit, the
interval orders) have only atomic fields, so their hash is the type hash and one 32-byte word
per field; the domain separator is the same for every message of a contract. Any value this
does not encode exactly as EIP-712 says (a wrong type, out of range, a nested or array type)
goes to encode_typed_data, which takes or refuses it as before: same digest, same errors.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address

try:  # libsecp256k1: what eth-keys itself recovers with when it is installed (setup.cfg)
    from coincurve import PublicKey
except ImportError:  # pragma: no cover - eth-account alone then
    PublicKey = None

_UINT = re.compile(r"uint(\d{1,3})")
_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX64 = re.compile(r"0x[0-9a-fA-F]{64}")


@lru_cache(maxsize=4096)
def checksummed(address: str) -> str:
    """The EIP-55 form of a 0x-hex address (kept: each costs a keccak, and few addresses
    recur); raises as eth_utils.to_checksum_address does for what is not an address."""
    return to_checksum_address(address)


def signable(full_message: dict[str, Any]) -> SignableMessage:
    """The EIP-712 SignableMessage of a full message (types, primaryType, domain, message)."""
    try:
        types = full_message["types"]
        primary = full_message["primaryType"]
        domain = _domain_separator(_key(types["EIP712Domain"], full_message["domain"]))
        fields = types[primary]
        if len(types) != 2 or primary == "EIP712Domain":
            raise _Unsupported  # nested structs, or no struct: eth-account's walk
        body = keccak(_type_hash(primary, _key(fields)) + b"".join(
            _word(field["type"], full_message["message"][field["name"]]) for field in fields))
    except (_Unsupported, KeyError, TypeError, ValueError, AttributeError):
        return encode_typed_data(full_message=full_message)
    return SignableMessage(b"\x01", domain, body)


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def recover(message: SignableMessage, signature: bytes) -> str:
    """The checksummed address whose key signed a SignableMessage (65-byte r‖s‖v signature).

    The same answer as Account.recover_message, without its layers (~180 -> ~60 us): a plain
    signature (v 27 or 28, r and s in 1..n-1) is recovered by libsecp256k1 directly, as
    eth-keys' coincurve backend does; anything else (and any failure) goes to eth-account,
    which answers or refuses it as before.
    """
    if PublicKey is not None and isinstance(signature, bytes) and len(signature) == 65 \
            and signature[64] in (27, 28) and isinstance(message, SignableMessage) \
            and message.version == b"\x01":
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
        if 0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N:
            digest = keccak(b"\x19\x01" + bytes(message.header) + bytes(message.body))
            try:
                public = PublicKey.from_signature_and_message(
                    signature[:64] + bytes((signature[64] - 27,)), digest, hasher=None)
            except Exception:  # noqa: BLE001 - eth-account gives the refusal its own words
                pass
            else:
                return checksummed("0x" + keccak(public.format(compressed=False)[1:])[-20:].hex())
    return Account.recover_message(message, signature=signature)


class _Unsupported(Exception):
    """A value or type this module leaves to eth-account."""


def _key(fields: list[dict[str, str]], values: dict[str, Any] | None = None) -> tuple:
    """Fields (and values) as a hashable key for the caches."""
    if values is None:
        return tuple((f["name"], f["type"]) for f in fields)
    if set(values) != {f["name"] for f in fields}:
        raise _Unsupported
    return tuple((f["name"], f["type"], values[f["name"]]) for f in fields)


@lru_cache(maxsize=64)
def _type_hash(primary: str, fields: tuple[tuple[str, str], ...]) -> bytes:
    return keccak(text=f"{primary}({','.join(f'{kind} {name}' for name, kind in fields)})")


@lru_cache(maxsize=64)
def _domain_separator(fields: tuple[tuple[str, str, Any], ...]) -> bytes:
    """The hash of a domain (EIP712Domain's fields with their values)."""
    words = b"".join(_word(kind, value) for _, kind, value in fields)
    return keccak(_type_hash("EIP712Domain", tuple((n, k) for n, k, _ in fields)) + words)


def _word(kind: str, value: Any) -> bytes:
    """One field's 32-byte encoding (EIP-712 encodeData), or _Unsupported."""
    if kind == "address" and isinstance(value, str) and _HEX40.fullmatch(value):
        digits = value[2:]
        if digits not in (digits.lower(), digits.upper()) and checksummed(value) != value:
            raise _Unsupported  # a mistyped checksum: eth-account refuses it
        return bytes(12) + bytes.fromhex(digits)
    if kind == "bytes32":
        raw = value if isinstance(value, bytes) else (
            bytes.fromhex(value[2:]) if isinstance(value, str) and _HEX64.fullmatch(value)
            else None)
        if raw is not None and len(raw) == 32:
            return raw
    if kind == "string" and isinstance(value, str):
        return keccak(text=value)
    bits = _UINT.fullmatch(kind)
    if bits and type(value) is int and 0 <= value < 2 ** int(bits[1]) \
            and int(bits[1]) % 8 == 0 and 8 <= int(bits[1]) <= 256:
        return value.to_bytes(32, "big")
    raise _Unsupported
