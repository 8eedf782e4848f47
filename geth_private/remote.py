"""A node that is already running, reached by http(s)://, ws(s):// or an IPC path."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from geth_private.anvil import DEV_KEY, AnvilControl
from geth_private.backend import (
    BLOCK_PERIOD,
    MINE_ON_DEMAND,
    MINING_TOGGLE,
    PEERS,
    PERSISTENT,
    SINGLE_NODE,
    SNAPSHOT,
    TIME_TRAVEL,
    TXPOOL,
    ChainBackend,
)
from geth_private.errors import CapabilityMissing, ChainError, ChainUnavailable
from geth_private.provider import NodeProvider


class RemoteBackend(AnvilControl, ChainBackend):
    """Talks to someone else's node; what it can do is probed, never assumed.

    The faucet key comes from GRIDBID_FAUCET_KEY (hex), else anvil's well-known dev key.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.capabilities = frozenset()
        self._w3: Web3 | None = None
        self._client = ""

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise ChainUnavailable(f"not connected to {self.uri}")
        return self._w3

    def start(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme in ("http", "https"):
            provider = NodeProvider(self.uri, timeout=30)
        elif parsed.scheme in ("ws", "wss"):
            provider = Web3.LegacyWebSocketProvider(self.uri)
        else:
            provider = Web3.IPCProvider(parsed.path if parsed.scheme == "ipc" else self.uri)
        w3 = Web3(provider)
        try:
            self._client = w3.client_version
        except Exception as err:
            raise ChainUnavailable(f"no node answers at {self.uri}: {err}") from err
        self._w3 = w3
        self.capabilities = frozenset(self._probe())

    def _probe(self) -> set[str]:
        """Capabilities from the client's name and from RPCs that answer."""
        found = {PERSISTENT}
        if self._client.lower().startswith("anvil"):
            return found | {MINING_TOGGLE, MINE_ON_DEMAND, BLOCK_PERIOD, TXPOOL, SNAPSHOT,
                            TIME_TRAVEL, SINGLE_NODE}
        peers = None
        for capability, method in ((TXPOOL, "txpool_content"), (PEERS, "admin_peers")):
            try:
                answer = self._rpc(method)
                found.add(capability)
                peers = answer if capability == PEERS else peers
            except ChainError:
                pass
        # Only a node that shows peers is taken to be one of several; one that cannot say is
        # counted as the operator's alone, the claim that promises participants less.
        if not peers:
            found.add(SINGLE_NODE)
        return found

    def faucet(self) -> LocalAccount:
        return Account.from_key(os.environ.get("GRIDBID_FAUCET_KEY") or DEV_KEY)

    def _anvil_only(self, what: str) -> None:
        if MINING_TOGGLE not in self.capabilities:
            raise CapabilityMissing(f"{self.uri} ({self._client}) cannot {what}")

    def set_mining(self, on: bool) -> None:
        self._anvil_only("start or stop mining")
        super().set_mining(on)

    def is_mining(self) -> bool:
        if MINING_TOGGLE not in self.capabilities:
            return bool(self.w3.eth.mining) if hasattr(self.w3.eth, "mining") else True
        return super().is_mining()

    def mine(self, blocks: int = 1) -> None:
        self._anvil_only("mine on demand")
        super().mine(blocks)

    def set_block_period(self, seconds: int) -> None:
        self._anvil_only("change its block period")
        super().set_block_period(seconds)

    def block_period(self) -> int | None:
        return super().block_period() if MINING_TOGGLE in self.capabilities else None

    def pending_hashes(self) -> list[str]:
        if TXPOOL not in self.capabilities:
            raise CapabilityMissing(f"{self.uri} does not list its pending transactions")
        return super().pending_hashes()

    def snapshot(self) -> object:
        self._anvil_only("take snapshots")
        return super().snapshot()

    def revert(self, snapshot_id: object) -> None:
        self._anvil_only("revert to snapshots")
        super().revert(snapshot_id)

    def peers(self) -> list[dict]:
        if PEERS not in self.capabilities:
            raise CapabilityMissing(f"{self.uri} does not report peers")
        return self._rpc("admin_peers")
