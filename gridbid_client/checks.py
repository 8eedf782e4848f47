"""What the client checks before it signs anything a portal hands it: a wallet's own refusals."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from eth_utils import function_signature_to_4byte_selector, is_address, to_checksum_address

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
    if action == "approve" and escrow and data[16:36] != bytes.fromhex(escrow[2:]):
        raise SigningRefused("the approval is for a spender other than the escrow")
    return fields


def bid_terms(
    terms: Mapping[str, Any],
    listing_id: int,
    price_wei: int,
    buyer: str,
    chain: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The EIP-712 bid to sign (uints as ints), when it is this buyer's bid at this price."""
    try:
        message = dict(terms["message"])
        types = terms["types"]
        fields = {f["name"]: f["type"] for f in types["Bid"]}
        domain = dict(terms["domain"])
    except (KeyError, TypeError) as err:
        raise SigningRefused(f"the bid terms are not EIP-712 typed data ({err})") from err
    if terms.get("primaryType") != "Bid" or set(message) != set(fields):
        raise SigningRefused("the typed data is not a Bid with exactly the Bid's fields")
    for name, kind in fields.items():
        if kind.startswith(("uint", "int")):
            try:
                message[name] = int(str(message[name]), 0)
            except ValueError as err:
                raise SigningRefused(f"the bid's {name} is not a number") from err
    if not is_address(message.get("buyer")) or to_checksum_address(message["buyer"]) != buyer:
        raise SigningRefused(f"the bid names buyer {message.get('buyer')}, not this account")
    if message.get("listingId") != listing_id:
        raise SigningRefused(f"the bid is for listing {message.get('listingId')}, not {listing_id}")
    if message.get("priceWeiPerKWh") != price_wei:
        raise SigningRefused("the bid's price is not the price asked for")
    contracts = (chain or {}).get("contracts", {})
    if chain and int(domain.get("chainId", -1)) != int(chain.get("chain_id", -1)):
        raise SigningRefused("the bid is for another chain")
    escrow = contracts.get("EnergyEscrow")
    if escrow and to_checksum_address(domain.get("verifyingContract", "0x" + "0" * 40)) != (
        to_checksum_address(escrow)
    ):
        raise SigningRefused("the bid is for a contract other than this portal's escrow")
    return {**terms, "message": message, "domain": domain}
