"""What the client checks before it signs anything a portal hands it: a wallet's own refusals."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import (
    function_signature_to_4byte_selector,
    is_address,
    keccak,
    to_checksum_address,
)

from gridbid_client.errors import SigningRefused
from gridbid_client.siwe import SiweError, SiweMessage
from gridbid_client.transport import Transport

# Each action's contract call(s), as the escrow had them before and after the per-market change,
# and the contract it must go to ("EnergyEscrow", "EnergyToken", or None for a plain transfer).
ACTIONS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "deposit": ("EnergyEscrow", ("deposit(uint8)", "deposit()")),
    "withdraw": ("EnergyEscrow", ("requestWithdrawal(uint8,uint256)", "withdraw(uint256)")),
    "complete_withdrawal": ("EnergyEscrow", ("completeWithdrawal(uint8)",)),
    "approve": ("EnergyToken", ("approve(address,uint256)",)),
    "close": ("EnergyEscrow", ("closeDeal(uint256)",)),
    "cancel_listing": ("EnergyToken", ("approve(address,uint256)",)),
    "send": (None, ()),
}
INT_FIELDS = ("value", "gas", "nonce", "chainId", "maxFeePerGas", "maxPriorityFeePerGas")


def login_message(text: str, transport: Transport, address: str) -> SiweMessage:
    """The parsed login message, when it names this portal and this account; else refused."""
    try:
        message = SiweMessage.parse(text)
    except SiweError as err:
        raise SigningRefused(f"the portal's login message is not EIP-4361: {err}") from err
    if message.scheme is not None and message.scheme != transport.scheme:
        raise SigningRefused(f"the login message is for {message.scheme}://, not this portal")
    if not transport.same_authority(message.domain):
        raise SigningRefused(
            f"the login message is for {message.domain}, but this portal is {transport.authority}"
        )
    uri = urlsplit(message.uri)
    if uri.scheme != transport.scheme or not transport.same_authority(uri.netloc):
        raise SigningRefused(f"the login message's URI {message.uri} is not on this portal")
    if message.address != address:
        raise SigningRefused(f"the login message names {message.address}, not this account")
    return message


def wei_of(eth: object) -> int:
    """An amount of Ether (number or decimal text) as wei, as the portal parses it."""
    try:
        return int(Decimal(str(eth).strip()) * 10**18)
    except InvalidOperation as err:
        raise SigningRefused(f"{eth!r} is not an amount of ETH") from err


def tx_fields(tx: Mapping[str, Any]) -> dict[str, Any]:
    """The prepared transaction as eth-account signs it: decimal strings to ints, type 2."""
    try:
        fields = {name: int(str(tx[name]), 0) for name in INT_FIELDS}
        fields["to"] = to_checksum_address(tx["to"])
    except (KeyError, TypeError, ValueError) as err:
        raise SigningRefused(f"the prepared transaction is malformed ({err})") from err
    if str(tx.get("type", 2)) not in ("2", "0x2"):
        raise SigningRefused("the prepared transaction is not of type 2 (EIP-1559)")
    fields["data"] = tx.get("data") or "0x"
    fields["type"] = 2
    return fields


def transaction(
    action: str,
    params: Mapping[str, Any],
    tx: Mapping[str, Any],
    chain: Mapping[str, Any] | None,
    recipient: str | None = None,
) -> dict[str, Any]:
    """The transaction to sign, when it does what the action asked and nothing else."""
    fields = tx_fields(tx)
    if action not in ACTIONS:
        raise SigningRefused(f"the client does not know what a {action!r} transaction does")
    contract, calls = ACTIONS[action]
    data = bytes.fromhex(fields["data"][2:]) if fields["data"].startswith("0x") else b""
    if chain and fields["chainId"] != int(chain.get("chain_id", fields["chainId"])):
        raise SigningRefused(f"the transaction is for chain {fields['chainId']}, not this chain")
    if contract is None:  # a plain Ether transfer
        if data:
            raise SigningRefused("a send must carry no contract call")
        if fields["value"] != wei_of(params.get("amount_eth")):
            raise SigningRefused("the send's value is not the amount asked for")
        if recipient and fields["to"] != recipient:
            raise SigningRefused(f"the send goes to {fields['to']}, not to {recipient}")
        return fields
    if not any(data[:4] == function_signature_to_4byte_selector(call) for call in calls):
        raise SigningRefused(f"the {action} transaction calls something other than {calls[0]}")
    expected = (chain or {}).get("contracts", {}).get(contract)
    if expected and fields["to"] != to_checksum_address(expected):
        raise SigningRefused(f"the {action} transaction goes to {fields['to']}, not {contract}")
    value = wei_of(params.get("amount_eth")) if action == "deposit" else 0
    if fields["value"] != value:
        raise SigningRefused(f"the {action} transaction moves {fields['value']} wei, not {value}")
    escrow = (chain or {}).get("contracts", {}).get("EnergyEscrow")
    if action in ("approve", "cancel_listing") and escrow \
            and data[16:36] != bytes.fromhex(escrow[2:]):
        raise SigningRefused("the approval is for a spender other than the escrow")
    return fields


# The escrow's Offer, as the client knows it: what it recomputes a listing's offer hash from
# and what a seller agrees to sign (never the portal's word for the type).
OFFER_TYPE = [("seller", "address"), ("sellerMeter", "address"), ("energyWh", "uint256"),
              ("floorPriceWeiPerKWh", "uint256"), ("deadline", "uint64"), ("nonce", "uint256")]
DOMAIN_TYPE = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
               {"name": "chainId", "type": "uint256"},
               {"name": "verifyingContract", "type": "address"}]


def _typed(terms: Mapping[str, Any], primary: str, what: str) -> tuple[dict, dict, dict]:
    """(message with uints as ints, field types, domain) of typed data of one primary type."""
    try:
        message = dict(terms["message"])
        fields = {f["name"]: f["type"] for f in terms["types"][primary]}
        domain = dict(terms["domain"])
    except (KeyError, TypeError) as err:
        raise SigningRefused(f"the {what} terms are not EIP-712 typed data ({err})") from err
    if terms.get("primaryType") != primary or set(message) != set(fields):
        raise SigningRefused(f"the typed data is not a {primary} with exactly its fields")
    for name, kind in fields.items():
        if kind.startswith(("uint", "int")):
            try:
                message[name] = int(str(message[name]), 0)
            except ValueError as err:
                raise SigningRefused(f"the {what}'s {name} is not a number") from err
    return message, fields, domain


def _same_address(value: object, want: str) -> bool:
    return is_address(value) and to_checksum_address(value) == to_checksum_address(want)


def _check_domain(domain: Mapping[str, Any], chain: Mapping[str, Any] | None, what: str) -> None:
    """The typed data is for this chain and this portal's escrow (when the chain is known)."""
    if chain and int(domain.get("chainId", -1)) != int(chain.get("chain_id", -1)):
        raise SigningRefused(f"the {what} is for another chain")
    escrow = (chain or {}).get("contracts", {}).get("EnergyEscrow")
    if escrow and not _same_address(domain.get("verifyingContract"), escrow):
        raise SigningRefused(f"the {what} is for a contract other than this portal's escrow")


def offer_terms(
    terms: Mapping[str, Any], energy_wh: int, floor_wei: int, seller: str, meter: str | None,
    chain: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The EIP-712 Offer to sign (uints as ints), when it is this seller's offer of energy_wh
    from floor_wei per kWh, from its own meter, on this chain's escrow."""
    message, fields, domain = _typed(terms, "Offer", "offer")
    if [(name, kind) for name, kind in fields.items()] != OFFER_TYPE:
        raise SigningRefused("the Offer's fields are not the escrow's Offer")
    if not _same_address(message.get("seller"), seller):
        raise SigningRefused(f"the offer names seller {message.get('seller')}, not this account")
    if meter is not None and not _same_address(message.get("sellerMeter"), meter):
        raise SigningRefused(f"the offer names meter {message.get('sellerMeter')}, not yours")
    if message["energyWh"] != energy_wh:
        raise SigningRefused(f"the offer sells {message['energyWh']} Wh, not {energy_wh}")
    if message["floorPriceWeiPerKWh"] != floor_wei:
        raise SigningRefused("the offer's floor price is not the start price asked for")
    _check_domain(domain, chain, "offer")
    return {**terms, "message": message, "domain": domain}


def order_terms(terms: Mapping[str, Any], kind: str, owner: str,
                meter: str | None) -> dict[str, Any]:
    """The EIP-712 SellOrder/BuyOrder to sign (uints as ints), when it is this owner's own,
    for its own meter."""
    primary, field = ("SellOrder", "seller") if kind == "sell" else ("BuyOrder", "buyer")
    message, _, domain = _typed(terms, primary, f"{kind} order")
    if not _same_address(message.get(field), owner):
        raise SigningRefused(f"the {kind} order names {message.get(field)}, not this account")
    if meter is not None and not _same_address(message.get("meter"), meter):
        raise SigningRefused(f"the {kind} order names meter {message.get('meter')}, not yours")
    return {**terms, "message": message, "domain": domain}


def _offer_message(domain: Mapping[str, Any], offer: Mapping[str, Any]) -> Any:
    """An offer as eth-account's signable EIP-712 message in an escrow's domain."""
    full = {"types": {"EIP712Domain": DOMAIN_TYPE,
                      "Offer": [{"name": n, "type": t} for n, t in OFFER_TYPE]},
            "primaryType": "Offer", "domain": dict(domain),
            "message": {n: int(str(offer[n]), 0) if t.startswith("uint") else offer[n]
                        for n, t in OFFER_TYPE}}
    return encode_typed_data(full_message=full)


def offer_hash(domain: Mapping[str, Any], offer: Mapping[str, Any]) -> bytes:
    """An offer's EIP-712 digest in an escrow's domain (what EnergyEscrow.hashOffer gives)."""
    signable = _offer_message(domain, offer)
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def listing_offer_hash(listing: Mapping[str, Any], domain: Mapping[str, Any]) -> bytes:
    """The hash of a listing's published offer (what a bid on it names), when the offer is
    its seller's, signed, of the listing's energy; else refused."""
    offer = listing.get("offer")
    if not isinstance(offer, Mapping):
        raise SigningRefused("the listing publishes no signed offer: nothing to bid on")
    try:
        digest = offer_hash(domain, offer)
        signer = Account.recover_message(_offer_message(domain, offer), signature=bytes.fromhex(
            str(listing.get("offer_signature"))[2:]))
    except Exception as err:  # malformed offer or signature: not a seller's consent
        raise SigningRefused(f"the listing's offer cannot be checked ({err})") from err
    if not _same_address(signer, listing["seller"]) or not _same_address(
            offer.get("seller"), listing["seller"]):
        raise SigningRefused("the listing's offer is not signed by its seller")
    if int(str(offer.get("energyWh")), 0) != int(listing["energy_wh"]):
        raise SigningRefused("the listing's offer sells another amount of energy")
    return digest


def bid_terms(
    terms: Mapping[str, Any],
    listing: Mapping[str, Any],
    price_wei: int,
    buyer: str,
    chain: Mapping[str, Any] | None,
    meter: str | None = None,
) -> dict[str, Any]:
    """The EIP-712 bid to sign (uints as ints), when it is this buyer's bid at this price on
    this listing's offer (its hash recomputed from the published offer), from its meter."""
    message, _, domain = _typed(terms, "Bid", "bid")
    if not _same_address(message.get("buyer"), buyer):
        raise SigningRefused(f"the bid names buyer {message.get('buyer')}, not this account")
    if meter is not None and not _same_address(message.get("buyerMeter"), meter):
        raise SigningRefused(f"the bid names meter {message.get('buyerMeter')}, not yours")
    _check_domain(domain, chain, "bid")
    digest = listing_offer_hash(listing, domain)
    if str(message.get("offer")).lower() != "0x" + digest.hex():
        raise SigningRefused(f"the bid names offer {message.get('offer')}, not listing "
                             f"{listing.get('id')}'s")
    if message.get("priceWeiPerKWh") != price_wei:
        raise SigningRefused("the bid's price is not the price asked for")
    return {**terms, "message": message, "domain": domain}
