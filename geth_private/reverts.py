"""Why a transaction reverted: a simulated call's custom error, decoded, or the node's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from geth_private.records import TxRecord

Decoder = Callable[[bytes], "str | None"]


def revert_reason(err: Exception, decode: Decoder) -> str:
    """A revert's reason: the contract's custom error when decode knows it, else its message."""
    data = getattr(err, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        decoded = decode(bytes.fromhex(data[2:]))
        if decoded:
            return decoded
    message = getattr(err, "message", None) or str(err)
    return message.removeprefix("execution reverted: ")


def replay_reason(w3: Any, record: TxRecord, decode: Decoder) -> str | None:
    """Why a mined transaction failed: the same call replayed on the block before its own."""
    call = {k: record.params[k] for k in ("to", "value", "data") if k in record.params}
    try:
        w3.eth.call(
            {"from": record.sender, **call, "gas": record.params["gas"]},
            block_identifier=max((record.block or 1) - 1, 0),
        )
    except (ContractCustomError, ContractLogicError) as err:
        return revert_reason(err, decode)
    except Web3Exception as err:
        return str(err)
    return "out of gas or reverted without data"
