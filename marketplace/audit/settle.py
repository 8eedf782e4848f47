"""Send an operator-signed interval batch from any account (`gridbid settle-interval`): the
operator's signature checked against the contract's OPERATOR_ROLE, the settlement window asked
of the node first, then the settle() transaction signed with the sender's own key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.logs import DISCARD

from contracts import load_artifact
from contracts.bindings import decode_revert
from marketplace.audit.findings import short
from marketplace.audit.signed_batch import BatchError, batch_signer, published_batch
from marketplace.positions import Batch

SIDES = {1: "buy", 2: "sell"}  # IntervalSettlement.BUY, .SELL
GAS_MARGIN = 1.25  # over the node's estimate: a batch's gas varies with what it first writes
RECEIPT_TIMEOUT_S = 120


class SettleError(Exception):
    """The batch cannot be sent (malformed, not the operator's, window not open, no node)."""


def send_published(
    w3: Web3, settlement: str, entry: Mapping[str, Any], sender: Any
) -> tuple[list[str], bool]:
    """Send one published batch from `sender` (an eth-account LocalAccount) over a node's
    web3: the lines to print and whether every position settled."""
    try:
        batch = published_batch(entry)
    except BatchError as err:
        raise SettleError(f"the batch is malformed: {err}") from err
    contract = w3.eth.contract(address=Web3.to_checksum_address(settlement),
                               abi=load_artifact("IntervalSettlement").abi)
    try:
        _check_operator(w3, contract, batch)
        call = contract.functions.settle(batch.to_tuple())
        gas = _estimate(w3, call, sender.address)
        receipt = _send(w3, call, sender, gas)
    except (OSError, Web3Exception) as err:
        raise SettleError(f"the node did not answer: {err}") from err
    return _outcome(contract, receipt, batch)


def _check_operator(w3: Web3, contract: Any, batch: Batch) -> None:
    """Refuse a batch whose Batch signature is not by an account with OPERATOR_ROLE."""
    domain = {"chainId": int(w3.eth.chain_id), "verifyingContract": contract.address}
    signer = batch_signer(batch, domain)
    role = contract.functions.OPERATOR_ROLE().call()
    if signer is None or not contract.functions.hasRole(role, signer).call():
        raise SettleError(f"the batch through interval {batch.through_interval} is not signed "
                          f"by the settlement's operator (signer {signer})")


def _estimate(w3: Web3, call: Any, sender: str) -> int:
    """The node's gas estimate, or the contract's reason for refusing the batch."""
    try:
        return int(call.estimate_gas({"from": sender}) * GAS_MARGIN)
    except ContractLogicError as err:
        reason = decode_revert(w3, err.data) if isinstance(err.data, str | bytes) else None
        if reason and reason.startswith("SettlementWindowNotOpen("):
            opens_at = reason[len("SettlementWindowNotOpen("):-1]
            raise SettleError(f"the window for anyone to send this batch opens at block time "
                              f"{opens_at}; try again then") from err
        raise SettleError(f"the contract refuses the batch: {reason or err}") from err


def _send(w3: Web3, call: Any, sender: Any, gas: int) -> Any:
    tx = call.build_transaction({
        "from": sender.address, "gas": gas, "chainId": int(w3.eth.chain_id),
        "nonce": w3.eth.get_transaction_count(sender.address, "pending")})
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)


def _outcome(contract: Any, receipt: Any, batch: Batch) -> tuple[list[str], bool]:
    """One line per settled or refused position, and whether all settled."""
    from marketplace.ledger_intervals import REASONS

    tx = receipt["transactionHash"].to_0x_hex()
    if receipt["status"] != 1:
        return [f"the batch reverted in {tx}"], False
    lines = []
    for event in contract.events.PositionSettled().process_receipt(receipt, errors=DISCARD):
        a = event["args"]
        lines.append(f"settled: {SIDES.get(a['side'], '?')} {short(a['account'])} intervals "
                     f"{a['fromInterval']}..{a['toInterval']}: {a['wh']} Wh, "
                     f"{a['amountWei']} wei")
    refused = contract.events.PositionRefused().process_receipt(receipt, errors=DISCARD)
    for event in refused:
        a = event["args"]
        lines.append(f"refused: {SIDES.get(a['side'], '?')} {short(a['account'])}: "
                     f"{REASONS.get(a['reason'], a['reason'])}")
    count = len(batch.buys) + len(batch.sells)
    lines.append(f"batch through interval {batch.through_interval} sent in {tx}: "
                 f"{count - len(refused)} of {count} positions settled")
    return lines, not refused
