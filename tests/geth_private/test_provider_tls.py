"""Review of 415f86c: trust_env off drops more than the per-call proxy lookup. requests reads
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE only when trust_env is on, so an https:// node signed by a
private CA (RemoteBackend takes https:// URIs) that web3's default provider reaches fails
with SSLError, a requests ConnectionError: reported as ChainUnavailable, "did not answer"."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading

import pytest
from web3 import Web3

from geth_private.provider import NodeProvider

from .test_provider import _Proxy as _Node  # answers eth_blockNumber 7, as a node


@pytest.fixture
def tls_node(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    cert, key = tmp_path / "node.pem", tmp_path / "node.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    server.shutdown()


def test_web3_s_default_provider_trusts_requests_ca_bundle(tls_node, monkeypatch):
    url, cert = tls_node
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    assert Web3(Web3.HTTPProvider(url)).eth.block_number == 7


def test_node_provider_trusts_requests_ca_bundle(tls_node, monkeypatch):
    url, cert = tls_node
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    w3 = Web3(NodeProvider(url, timeout=5))
    w3.provider.exception_retry_configuration = None
    assert w3.eth.block_number == 7
