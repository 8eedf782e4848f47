"""The ChainBackend seam and the one function that picks a backend from a URI."""

from __future__ import annotations

from abc import ABC, abstractmethod
from urllib.parse import urlparse

from eth_account.signers.local import LocalAccount
from web3 import Web3

from geth_private.errors import CapabilityMissing, ChainError

# Capability flags a backend may advertise; callers test these instead of backend classes.
MINING_TOGGLE = "mining_toggle"
MINE_ON_DEMAND = "mine_on_demand"
SNAPSHOT = "snapshot"
ONE_PENDING_PER_SENDER = "one_pending_per_sender"
PERSISTENT = "persistent"


class ChainBackend(ABC):
    """One chain node the app talks to: connect, faucet, mining control, snapshots."""

    uri: str = ""
    capabilities: frozenset[str] = frozenset()

    @property
    @abstractmethod
    def w3(self) -> Web3:
        """A connected Web3 instance; valid between start() and stop()."""

    @abstractmethod
    def start(self) -> None:
        """Bring the node up (or connect to it)."""

    def stop(self) -> None:
        """Release the node; the default has nothing to release."""
        return None

    @abstractmethod
    def faucet(self) -> LocalAccount:
        """A prefunded account whose key the app holds, used to fund new accounts."""

    def set_mining(self, on: bool) -> None:
        """Start or stop block production."""
        raise CapabilityMissing(f"{self.uri} cannot start or stop mining")

    def is_mining(self) -> bool:
        """Whether blocks are being produced."""
        raise CapabilityMissing(f"{self.uri} cannot report its mining state")

    def mine(self, blocks: int = 1) -> None:
        """Produce blocks now."""
        raise CapabilityMissing(f"{self.uri} cannot mine on demand")

    def snapshot(self) -> object:
        """Take a state snapshot to revert to later."""
        raise CapabilityMissing(f"{self.uri} has no snapshots")

    def revert(self, snapshot_id: object) -> None:
        """Return to a snapshot taken with snapshot()."""
        raise CapabilityMissing(f"{self.uri} has no snapshots")

    def has(self, capability: str) -> bool:
        """Whether this backend advertises a capability flag."""
        return capability in self.capabilities

    def __enter__(self) -> ChainBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def backend_from_uri(uri: str) -> ChainBackend:
    """Pick the backend for a chain URI such as `embedded://`."""
    scheme = urlparse(uri).scheme or uri.rstrip(":/")
    if scheme == "embedded":
        from geth_private.embedded import EmbeddedBackend

        return EmbeddedBackend(uri)
    raise ChainError(
        f"unsupported chain URI {uri!r}: this build supports embedded:// "
        "(anvil://, geth:// and http:// arrive with the chain-layer issue)"
    )
