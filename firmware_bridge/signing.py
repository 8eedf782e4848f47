"""Meter readings signed by the meter's key (EIP-712 `Reading`): the only thing a meter key signs.

A reading is the meter's cumulative Wh in and out (whole Wh, never going back) at a timestamp
(unix seconds), signed in the energy token's EIP-712 domain (chain id and token address), so
the token (minting) and the escrow (delivery) can both check it and no other chain or
contract can reuse it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils import is_hex_address, to_checksum_address

from contracts.bindings import reading_typed_data, recover_typed
from firmware_bridge.errors import BridgeError

MAX_UINT64 = 2**64 - 1
MAX_WH = 2**128  # far above any meter's lifetime; keeps JSON numbers sane


@dataclass(frozen=True)
class ReadingDomain:
    """Where readings are valid: the chain's id and the energy token's address."""

    chain_id: int
    token: str


@dataclass(frozen=True)
class SignedReading:
    """One signed cumulative reading of a meter."""

    meter: str  # checksummed address of the meter key
    wh_in: int
    wh_out: int
    timestamp: int  # unix seconds
    signature: bytes  # 65 bytes

    def struct(self) -> dict[str, Any]:
        """The reading as the contracts' `Reading` struct (a dict with its field names)."""
        return {"meter": self.meter, "whIn": self.wh_in, "whOut": self.wh_out,
                "timestamp": self.timestamp}

    def to_json(self) -> dict[str, Any]:
        """The reading as JSON (signature 0x-hex)."""
        return {**self.struct(), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, data: Any) -> SignedReading:
        """A signed reading sent as JSON; BridgeError says what is malformed (types, ranges)."""
        if not isinstance(data, dict):
            raise BridgeError("a signed reading must be an object")
        meter = data.get("meter")
        if not isinstance(meter, str) or not is_hex_address(meter):
            raise BridgeError(f"signed reading: meter {meter!r} is not an address")
        values = {}
        for key, top in (("whIn", MAX_WH), ("whOut", MAX_WH), ("timestamp", MAX_UINT64)):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise BridgeError(f"signed reading: {key} {value!r} is not an integer 0..{top}")
            values[key] = value
        signature = data.get("signature")
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
        except (AttributeError, ValueError) as err:
            raise BridgeError("signed reading: signature is not 0x-hex") from err
        if len(raw) != 65:
            raise BridgeError(f"signed reading: signature has {len(raw)} bytes, not 65")
        return cls(to_checksum_address(meter), values["whIn"], values["whOut"],
                   values["timestamp"], raw)

    def signer(self, domain: ReadingDomain) -> str | None:
        """The address that signed this reading in a domain (None if it cannot be told)."""
        return recover_typed(reading_typed_data(domain.chain_id, domain.token, self.struct()),
                             self.signature)

    def signed_by_meter(self, domain: ReadingDomain) -> bool:
        """Whether the reading's own meter key signed it in this domain."""
        return self.signer(domain) == self.meter


def sign_reading(
    key: Any, domain: ReadingDomain, wh_in: float, wh_out: float, timestamp: int
) -> SignedReading:
    """Sign a meter's cumulative counters (floored to whole Wh) at a timestamp with its key
    (an eth-account LocalAccount). ValueError for counters that are not finite and >= 0."""
    for name, value in (("wh_in", wh_in), ("wh_out", wh_out)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a meter reading's {name} must be finite and >= 0, got {value}")
    if not 0 <= int(timestamp) <= MAX_UINT64:
        raise ValueError(f"timestamp {timestamp} does not fit a uint64")
    reading = {"meter": to_checksum_address(key.address), "whIn": int(math.floor(wh_in)),
               "whOut": int(math.floor(wh_out)), "timestamp": int(timestamp)}
    message = encode_typed_data(
        full_message=reading_typed_data(domain.chain_id, domain.token, reading))
    signature = bytes(key.sign_message(message).signature)
    return SignedReading(reading["meter"], reading["whIn"], reading["whOut"],
                         reading["timestamp"], signature)
