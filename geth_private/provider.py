"""The HTTP provider every backend talks to its node through: a node gone is ChainUnavailable."""

from __future__ import annotations

import os
from typing import Any

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from .errors import ChainUnavailable

POOL_CONNECTIONS = 64  # kept open to one node, shared by the threads that call it

# What requests raises when nothing answers at the URL or the answer does not come in time.
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


class NodeProvider(HTTPProvider):
    """web3's HTTPProvider (its own retries included) whose connection errors are the chain
    layer's ChainUnavailable, so no caller above geth_private needs to know requests.

    Its session reads the environment once, here: the proxy for the node's URL (HTTP_PROXY,
    NO_PROXY, …) is looked up now, not on every call. requests' default looks up the proxies
    and ~/.netrc at each request, ~0.3 ms of CPU of a call's ~1 ms (bench/chain_calls.py), and
    the portal's loops and requests make dozens of calls a second under one GIL. Credentials
    go in the URL (http://user:secret@host:8545), not in ~/.netrc."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout}, session=node_session(url))

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except _UNREACHABLE as err:
            raise ChainUnavailable(f"the node at {self.endpoint_uri} did not answer "
                                   f"{method}: {type(err).__name__}") from err

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        try:
            return super().make_batch_request(batch_requests)
        except _UNREACHABLE as err:
            raise ChainUnavailable(f"the node at {self.endpoint_uri} did not answer a batch "
                                   f"of {len(batch_requests)}: {type(err).__name__}") from err


def node_session(url: str) -> requests.Session:
    """A session for one node: the environment's proxy for its URL read once, then not again
    (trust_env off). The CA bundle requests reads only with trust_env on (REQUESTS_CA_BUNDLE,
    CURL_CA_BUNDLE) is read here too: without it an https:// node signed by a private CA
    failed SSLError, reported as ChainUnavailable. One session serves every thread (web3's
    own keeps one per thread), so its pool keeps POOL_CONNECTIONS: requests' 10 closed and
    reopened a connection (and logged "Connection pool is full") at every call past 10 at
    once, and the portal's worker runs 250 threads."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_CONNECTIONS)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies = requests.utils.get_environ_proxies(url)
    session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or True)
    session.trust_env = False
    return session
