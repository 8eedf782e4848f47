"""POST /rpc: the RPC URL wallets and `cast` are given, a JSON-RPC filter in front of the node.

Reads and signed transactions only. Whatever would let a caller act as someone else or rewrite
the chain (eth_sendTransaction from the node's unlocked accounts, eth_sign, personal_*, anvil_*,
evm_*, hardhat_*, debug_*, admin_*, miner_*, txpool_*) is not offered: on anvil, anyone could
otherwise impersonate the operator or set balances. A signed transaction goes to the portal's
TxManager, so it is journaled like one the page sent.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from geth_private.errors import ChainError
from geth_private.signed import BadSignedTransaction, decode_signed
from marketplace.errors import MarketError
from web.access import client_address
from web.ratelimit import TokenBuckets
from web.runtime import NotStarted
from web.session import csrf_exempt, runtime

bp = Blueprint("rpc", __name__)
csrf_exempt("rpc.call")  # it carries no session's rights: reads, and bytes their owner signed

FORWARDED = frozenset({
    "eth_chainId", "eth_blockNumber", "eth_getBalance", "eth_getCode", "eth_getStorageAt",
    "eth_call", "eth_estimateGas", "eth_getTransactionCount", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getLogs",
    "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_feeHistory", "net_version",
    "web3_clientVersion", "eth_syncing",
})
MAX_BATCH = 100  # calls in one batch
MAX_BYTES = 1 << 20  # a request body
LIMITER_KEY = "gridbid.rpc_limits"

PARSE_ERROR, INVALID_REQUEST, NOT_OFFERED, INVALID_PARAMS = -32700, -32600, -32601, -32602
SERVER_ERROR, LIMIT_EXCEEDED = -32000, -32005


class RpcError(Exception):
    """A JSON-RPC error answer: code, message and (a node's revert, say) data."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.data = data


@bp.record_once
def _limits(state: Any) -> None:
    rate = float(state.app.config["RPC_RATE_PER_S"])
    # A full batch fits in a burst; after it, the steady rate.
    state.app.extensions[LIMITER_KEY] = TokenBuckets(rate, burst=max(2 * rate, MAX_BATCH))


@bp.post("/rpc")
def call() -> Response | tuple[Response, int]:
    """One JSON-RPC 2.0 call or a batch; errors in JSON-RPC's shape, never a 500."""
    if (request.content_length or 0) > MAX_BYTES:
        return _answer(_error(None, INVALID_REQUEST, f"a request is at most {MAX_BYTES} bytes"))
    try:
        message = json.loads(request.get_data(cache=False) or b"")
    except RequestEntityTooLarge:  # a chunked body that names no length runs past the limit
        return _answer(_error(None, INVALID_REQUEST, f"a request is at most {MAX_BYTES} bytes"))
    except (ValueError, UnicodeDecodeError) as err:
        return _answer(_error(None, PARSE_ERROR, f"parse error: {err}"))
    calls = message if isinstance(message, list) else [message]
    if not calls:
        return _answer(_error(None, INVALID_REQUEST, "an empty batch"))
    if len(calls) > MAX_BATCH:
        return _answer(_error(None, INVALID_REQUEST, f"at most {MAX_BATCH} calls in a batch"))
    wait_s = current_app.extensions[LIMITER_KEY].take(client_address(), len(calls))
    if wait_s:
        limited = _answer(_error(None, LIMIT_EXCEEDED, "limit exceeded: at most "
                                 f"{current_app.config['RPC_RATE_PER_S']} calls a second "
                                 "per client"), 429)
        limited[0].headers["Retry-After"] = str(math.ceil(wait_s))
        return limited
    answers = [_one(c) for c in calls]
    # A notification (no id) is answered by nothing, as JSON-RPC 2.0 says.
    answers = [a for c, a in zip(calls, answers, strict=True)
               if not (isinstance(c, dict) and "id" not in c)]
    if not answers:
        return Response(status=204)
    return _answer(answers if isinstance(message, list) else answers[0])


def _one(message: Any) -> dict[str, Any]:
    """The answer to one call of a request."""
    ident = message.get("id") if isinstance(message, dict) else None
    try:
        method, params = _checked(message)
        return {"jsonrpc": "2.0", "id": ident, "result": _result(method, params)}
    except RpcError as err:
        return _error(ident, err.code, str(err), err.data)


def _checked(message: Any) -> tuple[str, list[Any]]:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'a call is an object with "jsonrpc": "2.0"')
    method, params = message.get("method"), message.get("params", [])
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "a call names its method")
    if not isinstance(params, list):
        raise RpcError(INVALID_PARAMS, "params is a list")
    if method not in FORWARDED and method not in ("eth_accounts", "eth_sendRawTransaction"):
        raise RpcError(NOT_OFFERED, f"method not offered by this portal's RPC: {method[:64]}")
    return method, params


def _result(method: str, params: list[Any]) -> Any:
    if method == "eth_accounts":
        return []  # never the node's unlocked accounts: nobody signs with them through us
    if method == "eth_sendRawTransaction":
        return _send_raw(params)
    try:
        response = runtime().backend.rpc_request(method, params)
    except (ChainError, OSError, NotStarted) as err:
        raise RpcError(SERVER_ERROR, f"the node did not answer: {err}") from err
    if "error" in response:
        error = response["error"]
        raise _node_error(error if isinstance(error, dict) else {"message": str(error)})
    return response.get("result")


def _node_error(error: dict[str, Any]) -> RpcError:
    code = error.get("code")
    return RpcError(code if isinstance(code, int) else SERVER_ERROR,
                    str(error.get("message", "")), error.get("data"))


def _send_raw(params: list[Any]) -> str:
    """A signed transaction, checked and handed to the TxManager; its hash at once."""
    if len(params) != 1 or not isinstance(params[0], str):
        raise RpcError(INVALID_PARAMS, "eth_sendRawTransaction takes one 0x-hex string")
    try:
        signed = decode_signed(params[0])
    except BadSignedTransaction as err:
        raise RpcError(INVALID_PARAMS, str(err)) from err
    ledger = runtime().ledger
    chain_id = ledger.chain_id()
    if signed.chain_id != chain_id:
        # Without EIP-155 the same bytes would be valid on every chain: refused too.
        raise RpcError(SERVER_ERROR, f"the transaction is signed for chain {signed.chain_id}, "
                                     f"this chain is {chain_id}")
    try:
        record = runtime().market.submit_signed(signed, ledger.describe(signed))
    except MarketError as err:  # e.g. a closeDeal whose party may not close that deal now
        raise RpcError(SERVER_ERROR, str(err)) from err
    return record.tx_hash


def _error(ident: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": ident, "error": error}


def _answer(body: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(body), status
