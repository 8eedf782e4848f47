"""Web3 contract objects from the artifacts, and custom-error decoding for revert data."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from web3 import Web3

from contracts import load_artifact
from contracts.eip712 import checksummed, recover, signable

CONTRACTS = ("EnergyToken", "EnergyEscrow", "IntervalSettlement")

# Solidity's built-in revert payloads, decoded alongside the custom errors of the ABIs.
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


# The EIP-712 types both contracts check. Bids and offers are signed in the escrow's domain,
# meter readings and meter consents in the token's (ERC20Permit's domain: the token's name).
ESCROW_DOMAIN = ("gridbid EnergyEscrow", "1")
TOKEN_DOMAIN = ("gridbid Energy", "1")

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

OFFER_TYPES = {
    "Offer": [
        {"name": "seller", "type": "address"},
        {"name": "sellerMeter", "type": "address"},
        {"name": "energyWh", "type": "uint256"},
        {"name": "floorPriceWeiPerKWh", "type": "uint256"},
        {"name": "deadline", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
    ]
}
BID_TYPES = {
    "Bid": [
        {"name": "offer", "type": "bytes32"},
        {"name": "buyer", "type": "address"},
        {"name": "buyerMeter", "type": "address"},
        {"name": "priceWeiPerKWh", "type": "uint256"},
        {"name": "maxWh", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint64"},
    ]
}
READING_TYPES = {
    "Reading": [
        {"name": "meter", "type": "address"},
        {"name": "whIn", "type": "uint256"},
        {"name": "whOut", "type": "uint256"},
        {"name": "timestamp", "type": "uint64"},
    ]
}
CONSENT_TYPES = {
    "MeterConsent": [
        {"name": "meter", "type": "address"},
        {"name": "owner", "type": "address"},
        {"name": "kind", "type": "uint8"},
        {"name": "ratedPowerW", "type": "uint32"},
        {"name": "deadline", "type": "uint64"},
    ]
}
PERMIT_TYPES = {  # ERC-2612, in the token's domain
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
OFFER_FIELDS = [field["name"] for field in OFFER_TYPES["Offer"]]
BID_FIELDS = [field["name"] for field in BID_TYPES["Bid"]]
READING_FIELDS = [field["name"] for field in READING_TYPES["Reading"]]
CONSENT_FIELDS = [field["name"] for field in CONSENT_TYPES["MeterConsent"]]


def typed_data(
    types: dict[str, list[dict[str, str]]], domain: tuple[str, str], chain_id: int,
    verifying_contract: str, message: dict[str, Any],
) -> dict[str, Any]:
    """The full EIP-712 message of one of the types above (its only primary type)."""
    (primary, fields), = types.items()
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, **types},
        "primaryType": primary,
        "domain": {
            "name": domain[0],
            "version": domain[1],
            "chainId": int(chain_id),
            "verifyingContract": checksummed(verifying_contract),
        },
        "message": {field["name"]: message[field["name"]] for field in fields},
    }


def bid_typed_data(chain_id: int, escrow: str, bid: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message a buyer signs for a bid (domain "gridbid EnergyEscrow" v1).

    The bid's `offer` (the offer's hash) may be given as bytes or 0x-hex; the message holds
    it as 0x-hex, so the typed data is also plain JSON for a wallet.
    """
    message = dict(bid)
    if isinstance(message.get("offer"), bytes | bytearray):
        message["offer"] = "0x" + bytes(message["offer"]).hex()
    return typed_data(BID_TYPES, ESCROW_DOMAIN, chain_id, escrow, message)


def offer_typed_data(chain_id: int, escrow: str, offer: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message a seller signs for an offer (domain "gridbid EnergyEscrow" v1)."""
    return typed_data(OFFER_TYPES, ESCROW_DOMAIN, chain_id, escrow, offer)


def reading_typed_data(chain_id: int, token: str, reading: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message a meter signs for a reading (domain "gridbid Energy" v1)."""
    return typed_data(READING_TYPES, TOKEN_DOMAIN, chain_id, token, reading)


def consent_typed_data(chain_id: int, token: str, consent: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message an owner signs to have a meter enrolled (domain "gridbid Energy")."""
    return typed_data(CONSENT_TYPES, TOKEN_DOMAIN, chain_id, token, consent)


def digest(full_message: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest of a full message (what hashOffer/hashBid/... return)."""
    message = signable(full_message)
    return bytes(Web3.keccak(b"\x19" + message.version + message.header + message.body))


def offer_hash(chain_id: int, escrow: str, offer: dict[str, Any]) -> bytes:
    """An offer's EIP-712 digest: what a bid names in its `offer` field (EnergyEscrow.hashOffer)."""
    return digest(offer_typed_data(chain_id, escrow, offer))


def sign_typed(account: Any, full_message: dict[str, Any]) -> bytes:
    """A 65-byte signature of a full EIP-712 message by a key (eth-account LocalAccount)."""
    return bytes(account.sign_message(signable(full_message)).signature)


def sign_bid(account: Any, chain_id: int, escrow: str, bid: dict[str, Any]) -> bytes:
    """A buyer's 65-byte signature of a bid, made with its own key (eth-account LocalAccount)."""
    return sign_typed(account, bid_typed_data(chain_id, escrow, bid))


def sign_offer(account: Any, chain_id: int, escrow: str, offer: dict[str, Any]) -> bytes:
    """A seller's 65-byte signature of an offer, made with its own key."""
    return sign_typed(account, offer_typed_data(chain_id, escrow, offer))


def recover_typed(full_message: dict[str, Any], signature: bytes) -> str | None:
    """The checksummed address that signed a full EIP-712 message, or None if it cannot be told."""
    try:
        return recover(signable(full_message), bytes(signature))
    except Exception:  # malformed signature (wrong length, bad v, s out of range)
        return None


def _as_tuple(fields: list[str], value: dict[str, Any]) -> tuple:
    return tuple(value[name] for name in fields)


def bid_tuple(bid: dict[str, Any]) -> tuple:
    """A bid as the tuple openDeal and hashBid take (its `offer` hash as 32 bytes)."""
    values = dict(bid)
    offer = values["offer"]
    if isinstance(offer, str):
        offer = bytes.fromhex(offer.removeprefix("0x"))
    values["offer"] = bytes(offer)
    return _as_tuple(BID_FIELDS, values)


def offer_tuple(offer: dict[str, Any]) -> tuple:
    """An offer as the tuple openDeal and hashOffer take."""
    return _as_tuple(OFFER_FIELDS, offer)


def reading_tuple(reading: dict[str, Any]) -> tuple:
    """A reading as the tuple mintReadings and reportDelivery take."""
    return _as_tuple(READING_FIELDS, reading)


def consent_tuple(consent: dict[str, Any]) -> tuple:
    """A MeterConsent as enrollMeter's leading arguments (meter, owner, kind, W, deadline)."""
    return _as_tuple(CONSENT_FIELDS, consent)


def sign_consent(account: Any, chain_id: int, token: str, consent: dict[str, Any]) -> bytes:
    """An owner's 65-byte signature of a MeterConsent (domain "gridbid Energy" v1)."""
    return sign_typed(account, consent_typed_data(chain_id, token, consent))


def sign_reading_struct(account: Any, chain_id: int, token: str, reading: dict[str, Any]) -> bytes:
    """A meter key's 65-byte signature of a Reading struct (firmware_bridge.signing for meters)."""
    return sign_typed(account, reading_typed_data(chain_id, token, reading))


# -- the community market's standing orders and batches (IntervalSettlement's domain) ----------

SETTLEMENT_DOMAIN = ("gridbid IntervalSettlement", "1")
SELL, BUY = "sell", "buy"  # order kinds (IntervalSettlement.SELL = 2, BUY = 1 as sides)

SELL_ORDER = {
    "SellOrder": [
        {"name": "seller", "type": "address"},
        {"name": "meter", "type": "address"},
        {"name": "floorWeiPerKWh", "type": "uint256"},
        {"name": "maxWhPerInterval", "type": "uint64"},
        {"name": "reserveWh", "type": "uint64"},
        {"name": "expiry", "type": "uint64"},
        {"name": "nonce", "type": "uint64"},
    ]
}
BUY_ORDER = {
    "BuyOrder": [
        {"name": "buyer", "type": "address"},
        {"name": "meter", "type": "address"},
        {"name": "capWeiPerKWh", "type": "uint256"},
        {"name": "maxWhPerInterval", "type": "uint64"},
        {"name": "expectedWh", "type": "uint64"},
        {"name": "dailyBudgetWei", "type": "uint256"},
        {"name": "expiry", "type": "uint64"},
        {"name": "nonce", "type": "uint64"},
    ]
}
BATCH = {
    "Batch": [
        {"name": "throughInterval", "type": "uint32"},
        {"name": "positionsHash", "type": "bytes32"},
    ]
}
ORDER_TYPES = {SELL: SELL_ORDER, BUY: BUY_ORDER}
SELL_ORDER_FIELDS = [field["name"] for field in SELL_ORDER["SellOrder"]]
BUY_ORDER_FIELDS = [field["name"] for field in BUY_ORDER["BuyOrder"]]
ORDER_OWNER = {SELL: "seller", BUY: "buyer"}

# ABI type strings of settle()'s arguments, for hashing a batch's positions as the contract does.
_READING_ABI = "(address,uint256,uint256,uint64)"
_FILL_ABI = "(uint32,uint32,uint32,uint64,uint256)"
_SELL_ORDER_ABI = "(address,address,uint256,uint64,uint64,uint64,uint64)"
_BUY_ORDER_ABI = "(address,address,uint256,uint64,uint64,uint256,uint64,uint64)"
_POSITION_TAIL = f"bytes,{_READING_ABI},bytes,{_READING_ABI},bytes,{_FILL_ABI})"
BUY_POSITION_ABI = f"({_BUY_ORDER_ABI},{_POSITION_TAIL}"
SELL_POSITION_ABI = f"({_SELL_ORDER_ABI},{_POSITION_TAIL}"


def _domain_of(domain: dict[str, Any]) -> tuple[int, str]:
    """(chain id, contract) of an IntervalLedger.domain() dict (EIP-712 domain fields)."""
    return int(domain["chainId"]), domain["verifyingContract"]


def order_typed_data(kind: str, order: dict[str, Any], domain: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 message an owner signs for a standing order ("sell" or "buy")."""
    if kind not in ORDER_TYPES:
        raise ValueError(f"an order is 'sell' or 'buy', not {kind!r}")
    return typed_data(ORDER_TYPES[kind], SETTLEMENT_DOMAIN, *_domain_of(domain), order)


def order_hash(kind: str, order: dict[str, Any], domain: dict[str, Any]) -> bytes:
    """A standing order's EIP-712 digest (IntervalSettlement.hashSellOrder/hashBuyOrder)."""
    return digest(order_typed_data(kind, order, domain))


def sign_sell_order(key: Any, order: dict[str, Any], domain: dict[str, Any]) -> bytes:
    """A seller's 65-byte signature of its standing order."""
    return sign_typed(key, order_typed_data(SELL, order, domain))


def sign_buy_order(key: Any, order: dict[str, Any], domain: dict[str, Any]) -> bytes:
    """A buyer's 65-byte signature of its standing order."""
    return sign_typed(key, order_typed_data(BUY, order, domain))


def sell_order_tuple(order: dict[str, Any]) -> tuple:
    """A sell order as the tuple settle() and hashSellOrder take."""
    return _as_tuple(SELL_ORDER_FIELDS, order)


def buy_order_tuple(order: dict[str, Any]) -> tuple:
    """A buy order as the tuple settle() and hashBuyOrder take."""
    return _as_tuple(BUY_ORDER_FIELDS, order)


def positions_hash(buys: list[tuple], sells: list[tuple], mints: list[tuple],
                   mint_sigs: list[bytes]) -> bytes:
    """keccak of a batch's positions and mints, as IntervalSettlement.positionsHash makes it."""
    from eth_abi import encode

    types = [f"{BUY_POSITION_ABI}[]", f"{SELL_POSITION_ABI}[]", f"{_READING_ABI}[]", "bytes[]"]
    return bytes(Web3.keccak(encode(types, [buys, sells, mints, mint_sigs])))


def batch_typed_data(through_interval: int, positions: bytes,
                     domain: dict[str, Any]) -> dict[str, Any]:
    """The EIP-712 Batch the operator signs so that anyone may send it after the window."""
    message = {"throughInterval": int(through_interval), "positionsHash": "0x" + positions.hex()}
    return typed_data(BATCH, SETTLEMENT_DOMAIN, *_domain_of(domain), message)


def sign_batch(key: Any, through_interval: int, positions: bytes,
               domain: dict[str, Any]) -> bytes:
    """The operator's 65-byte signature of a batch (its positions_hash)."""
    return sign_typed(key, batch_typed_data(through_interval, positions, domain))
