"""NodeProvider: a node that does not answer is the chain layer's ChainUnavailable."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest
from web3 import Web3

from geth_private.errors import ChainUnavailable
from geth_private.provider import NodeProvider, node_session


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


class _Proxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy that answers eth_blockNumber itself: what reached it, and through whom."""

    seen: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(self.path)  # a proxy is sent the absolute URL
        answer = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x7"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def test_the_environment_s_proxy_is_read_once_when_the_provider_is_made(monkeypatch):
    """HTTP_PROXY still reaches a node behind a proxy, read when the provider is made (not
    at every call: requests' lookups of proxies and ~/.netrc cost ~0.3 ms a call)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        provider = NodeProvider("http://node.invalid:8545", timeout=5)
        monkeypatch.delenv("HTTP_PROXY")  # read once: the provider keeps it
        assert Web3(provider).eth.block_number == 7
        assert _Proxy.seen == ["http://node.invalid:8545/"]
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
        assert node_session("http://node.invalid:8545").proxies["http"] == \
            "http://127.0.0.1:3128"
        assert node_session("http://node.invalid:8545").trust_env is False
        monkeypatch.setenv("NO_PROXY", "node.invalid")
        assert node_session("http://node.invalid:8545").proxies == {}
    finally:
        server.shutdown()


class _Node(_Proxy):
    """A node answering eth_blockNumber over kept-alive HTTP/1.1 connections, counting them."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self):
        type(self).connections += 1
        super().setup()


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # every thread's connect at once
    daemon_threads = True


def test_threads_calling_at_once_reuse_the_pool_s_connections(caplog):
    """The session is every thread's (web3's default keeps one per thread): 30 threads
    calling at once keep their connections, one each at most (requests' pool of 10 closed
    one at every call past 10, reconnected, and warned "Connection pool is full")."""
    server = _Server(("127.0.0.1", 0), _Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w3 = Web3(NodeProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=5))
        barrier, failed = threading.Barrier(30), []

        def calls():
            barrier.wait()
            try:
                for _ in range(5):
                    assert w3.eth.block_number == 7
            except Exception as err:  # noqa: BLE001 - reported below
                failed.append(err)

        threads = [threading.Thread(target=calls) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failed
        assert _Node.connections <= 30
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    finally:
        server.shutdown()
