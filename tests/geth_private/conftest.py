"""Fixtures of the chain-layer tests: an embedded chain per module, a TxManager per test."""

from __future__ import annotations

import pytest

from geth_private import TxManager, backend_from_uri


@pytest.fixture(scope="module")
def chain():
    """An embedded chain for the module's tests (each test reverts what it did)."""
    backend = backend_from_uri("embedded://")
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def txm(chain):
    """A TxManager on the chain; mining back on and the chain reverted afterwards."""
    snapshot = chain.snapshot()
    yield TxManager(chain)
    chain.set_mining(True)
    chain.revert(snapshot)
