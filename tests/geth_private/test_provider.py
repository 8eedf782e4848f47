"""NodeProvider: a node that does not answer is the chain layer's ChainUnavailable."""

from __future__ import annotations

import socket

import pytest
from web3 import Web3

from geth_private.errors import ChainUnavailable
from geth_private.provider import NodeProvider


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_a_node_that_is_gone_is_chain_unavailable():
    w3 = Web3(NodeProvider(f"http://127.0.0.1:{_closed_port()}", timeout=2))
    w3.provider.exception_retry_configuration = None  # one attempt: the refusal at once
    with pytest.raises(ChainUnavailable, match="eth_getBlockByNumber: ConnectionError"):
        w3.eth.get_block("latest")


def test_a_node_that_never_answers_is_chain_unavailable():
    with socket.socket() as listening:  # accepts the connection, never replies
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        w3 = Web3(NodeProvider(f"http://127.0.0.1:{listening.getsockname()[1]}", timeout=0.3))
        w3.provider.exception_retry_configuration = None
        with pytest.raises(ChainUnavailable, match="ReadTimeout"):
            w3.eth.get_block("latest")
