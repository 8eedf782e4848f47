"""The ChainBackend seam: the ABC every chain backend implements, and its capability flags."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from geth_private.errors import CapabilityMissing

# Capability flags a backend may advertise; callers test these instead of backend classes.
MINING_TOGGLE = "mining_toggle"  # block production can be stopped and started
MINE_ON_DEMAND = "mine_on_demand"  # mine(n) produces blocks now
BLOCK_PERIOD = "block_period"  # set_block_period(s) makes a block every s seconds
TXPOOL = "txpool"  # the node lists its pending transactions
SNAPSHOT = "snapshot"
ONE_PENDING_PER_SENDER = "one_pending_per_sender"  # the app must queue the rest
PERSISTENT = "persistent"  # blocks, balances and contracts survive a restart
PEERS = "peers"  # the node reports its peers (geth)
TIME_TRAVEL = "time_travel"
# One node makes every block and the operator runs it (anvil, embedded, geth --dev): block
# production is the operator's, and the operator could rewrite the chain's state at will.
SINGLE_NODE = "single_node"


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

    def set_block_period(self, seconds: int) -> None:
        """Produce a block every `seconds` (0: one block per transaction where supported)."""
        raise CapabilityMissing(f"{self.uri} cannot change its block period")

    def block_period(self) -> int | None:
        """Seconds between blocks, 0 for a block per transaction, None when unknown."""
        return None

    def pending_hashes(self) -> list[str]:
        """Hashes of the transactions waiting in the node's pool."""
        raise CapabilityMissing(f"{self.uri} does not list its pending transactions")

    def peers(self) -> list[dict[str, Any]]:
        """The node's peers."""
        raise CapabilityMissing(f"{self.uri} does not report peers")

    def snapshot(self) -> object:
        """Take a state snapshot to revert to later."""
        raise CapabilityMissing(f"{self.uri} has no snapshots")

    def revert(self, snapshot_id: object) -> None:
        """Return to a snapshot taken with snapshot()."""
        raise CapabilityMissing(f"{self.uri} has no snapshots")

    def rpc_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """One JSON-RPC call to the node, its response as on the wire (result or error)."""
        return dict(self.w3.provider.make_request(method, params))  # type: ignore[arg-type]

    def has(self, capability: str) -> bool:
        """Whether this backend advertises a capability flag."""
        return capability in self.capabilities

    def status(self) -> dict[str, Any]:
        """What an operator wants to know of the node at a glance."""
        w3 = self.w3
        info: dict[str, Any] = {
            "uri": self.uri,
            "client": w3.client_version,
            "chain_id": w3.eth.chain_id,
            "block": w3.eth.block_number,
            "capabilities": sorted(self.capabilities),
        }
        if self.has(MINING_TOGGLE):
            info["mining"] = self.is_mining()
        info["block_period"] = self.block_period()
        return info

    def __enter__(self) -> ChainBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
