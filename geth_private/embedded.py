"""In-process py-evm chain through eth-tester: memory only, for tests and the embedded default."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3

from geth_private.backend import (
    MINE_ON_DEMAND,
    MINING_TOGGLE,
    ONE_PENDING_PER_SENDER,
    SINGLE_NODE,
    SNAPSHOT,
    TIME_TRAVEL,
    ChainBackend,
)
from geth_private.errors import ChainUnavailable


class _LockedTesterProvider(EthereumTesterProvider):
    """eth-tester provider serialised by a lock: py-evm is not safe across threads."""

    def __init__(self, tester: EthereumTester, lock: threading.RLock):
        super().__init__(tester)
        self._lock = lock
        self.not_before = 0  # the latest time a test travelled to: blocks are never dated earlier

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            if method in _SENDS:
                self._stamp_now()
            try:
                return super().make_request(method, params)
            except TransactionFailed as err:
                data = _revert_data(err)
                if data is None:
                    raise
        # Answer as geth and anvil do (code 3 with the revert data), so that web3 raises
        # ContractCustomError carrying the custom error instead of a mangled string.
        return {
            "jsonrpc": "2.0",
            "id": 0,
            "error": {"code": 3, "message": "execution reverted", "data": "0x" + data.hex()},
        }


    def _stamp_now(self) -> None:
        """Date the block a transaction goes into now, as anvil does: never before its parent
        (a test's time travel stays), never ahead of the wall clock because blocks came fast.

        eth-tester dated its pending block when the previous one was mined (on an idle chain,
        long ago: a reading signed a moment ago was "from the future" to the contracts), and
        a block per transaction a second later than its parent ran the chain's clock ahead of
        the wall's under load (a reading signed now was older than the deal it reports).
        """
        chain = self.ethereum_tester.backend.chain
        parent = chain.get_canonical_head().timestamp
        stamp = max(parent, int(time.time()), self.not_before)
        if chain.header.timestamp != stamp:
            chain.header = chain.header.copy(timestamp=stamp)


_SENDS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})


def _same_second_blocks(vm_class: type) -> type:
    """The VM, taking a block in the same second as its parent (as anvil and geth's dev mode
    do); py-evm wants every block a second later, which a block per transaction outruns."""

    class SameSecondVM(vm_class):  # type: ignore[misc, valid-type]
        @classmethod
        def validate_header(cls, header: Any, parent_header: Any) -> None:
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                header = header.copy(timestamp=header.timestamp + 1)  # all else checked as is
            super().validate_header(header, parent_header)

    SameSecondVM.__name__ = vm_class.__name__
    return SameSecondVM


def _wire(value: Any) -> Any:
    """A web3-formatted value as JSON-RPC carries it: quantities and bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return str(value)


def _revert_data(err: TransactionFailed) -> bytes | None:
    """The raw revert bytes web3's eth-tester glue hides in the exception it chained."""
    original = err.__context__
    raw = original.args[0] if isinstance(original, TransactionFailed) and original.args else None
    if isinstance(raw, Exception) and raw.args:
        raw = raw.args[0]
    if isinstance(raw, str) and raw[:2] in ("b'", 'b"'):
        # eth-tester hands the revert bytes over as their repr(); read them back safely.
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
    return bytes(raw) if isinstance(raw, bytes | bytearray) else None


class EmbeddedBackend(ChainBackend):
    """A py-evm chain inside this process; auto-mine on/off stands in for mining."""

    capabilities = frozenset(
        {MINING_TOGGLE, MINE_ON_DEMAND, SNAPSHOT, ONE_PENDING_PER_SENDER, TIME_TRAVEL,
         SINGLE_NODE}
    )

    def __init__(self, uri: str = "embedded://"):
        self.uri = uri
        self._lock = threading.RLock()
        self._tester: EthereumTester | None = None
        self._w3: Web3 | None = None
        self._provider: _LockedTesterProvider | None = None
        self._faucet: LocalAccount | None = None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise ChainUnavailable("the embedded chain is not started")
        return self._w3

    @property
    def tester(self) -> EthereumTester:
        """The underlying eth-tester instance (time travel in tests)."""
        if self._tester is None:
            raise ChainUnavailable("the embedded chain is not started")
        return self._tester

    def start(self) -> None:
        if self._tester is not None:
            return
        backend = PyEVMBackend()
        chain_class = type(backend.chain)
        chain_class.vm_configuration = tuple(
            (block, _same_second_blocks(vm)) for block, vm in chain_class.vm_configuration)
        self._tester = EthereumTester(backend)
        self._provider = _LockedTesterProvider(self._tester, self._lock)
        self._w3 = Web3(self._provider)
        # eth-tester's genesis accounts are prefunded and their keys are known locally.
        self._faucet = Account.from_key(backend.account_keys[0].to_bytes())
        # A call without "from" gets one; else eth-tester's middleware asks eth_accounts for
        # it on every call (3 requests, ~6 ms: a third of a bid's cost, bench/portal.py).
        self._w3.eth.default_account = self._faucet.address

    def stop(self) -> None:
        self._tester = None
        self._w3 = None

    def rpc_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """eth-tester speaks Python, not JSON-RPC: web3's eth-tester glue translates the
        request, and the answer is written back as a node would (hex quantities, camelCase)."""
        w3 = self.w3
        call = w3.provider.request_func(w3, w3.middleware_onion)
        try:
            response = call(method, params)
        except Exception as err:  # whatever eth-tester cannot take is a bad request, not a crash
            return {"jsonrpc": "2.0", "id": 0, "error": {"code": -32602, "message": str(err)}}
        return {key: _wire(value) for key, value in dict(response).items()}

    def faucet(self) -> LocalAccount:
        if self._faucet is None:
            raise ChainUnavailable("the embedded chain is not started")
        return self._faucet

    def set_mining(self, on: bool) -> None:
        with self._lock:
            if on:
                self.tester.enable_auto_mine_transactions()
            else:
                self.tester.disable_auto_mine_transactions()

    def is_mining(self) -> bool:
        return bool(self.tester.auto_mine_transactions)

    def block_period(self) -> int | None:
        return 0  # a block per transaction while mining

    def mine(self, blocks: int = 1) -> None:
        with self._lock:
            self.tester.mine_blocks(blocks)

    def snapshot(self) -> object:
        with self._lock:
            return self.tester.take_snapshot()

    def revert(self, snapshot_id: object) -> None:
        with self._lock:
            self.tester.revert_to_snapshot(snapshot_id)

    def time_travel(self, timestamp: int) -> None:
        """Move the next block's timestamp forward (tests of expiry)."""
        with self._lock:
            self.tester.time_travel(timestamp)
            # The next send dates its block now unless that is before where the test travelled.
            self._provider.not_before = max(self._provider.not_before, int(timestamp))
