"""JSON-RPC calls counted by method, per thread: what a pass of the market asks of the node."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from web3 import Web3
from web3.middleware import Web3Middleware

NAME = "gridbid-rpc-counter"


class RpcCounter:
    """Counts the calls one thread makes through a Web3 instance while counting() is open.

    eth_call is counted by its 4-byte selector too ("eth_call:0x12345678"), so a test can tell
    a getDeal from a balance read. Other threads' calls (the transaction poller) are not counted.
    """

    def __init__(self, w3: Web3):
        self.w3 = w3
        self.calls: Counter[str] = Counter()
        self._thread: int | None = None
        counter = self

        class _Counting(Web3Middleware):
            def wrap_make_request(self, make_request: Callable[..., Any]) -> Callable[..., Any]:
                def middleware(method: str, params: Any) -> Any:
                    counter._note(method, params)
                    return make_request(method, params)

                return middleware

        if NAME not in w3.middleware_onion:
            w3.middleware_onion.add(_Counting, name=NAME)
        else:
            raise RuntimeError("this Web3 instance is counted already")

    def _note(self, method: str, params: Any) -> None:
        if self._thread != threading.get_ident():
            return
        self.calls[method] += 1
        if method == "eth_call" and params and isinstance(params[0], dict):
            self.calls[f"eth_call:{str(params[0].get('data', ''))[:10]}"] += 1

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        """Count this thread's calls until the block ends; the counter (fresh each time)."""
        self.calls = Counter()
        self._thread = threading.get_ident()
        try:
            yield self.calls
        finally:
            self._thread = None

    def reads(self) -> int:
        """Calls counted other than sends and the per-selector eth_call entries."""
        return sum(n for m, n in self.calls.items()
                   if ":" not in m and m != "eth_sendRawTransaction")

    def remove(self) -> None:
        """Stop counting (the middleware leaves the Web3 instance)."""
        self.w3.middleware_onion.remove(NAME)
