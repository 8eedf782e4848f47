"""A clique network's signers seen from one node: who signs, who seals, votes, and the quorum
a sealing toggle must keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3 import Web3

from geth_private.errors import QuorumRefused

Rpc = Callable[[str, list[Any]], Any]


def quorum(signers: int) -> int:
    """How many signers must seal for clique to go on: one block in any floor(N/2)+1 each."""
    return signers // 2 + 1


class CliqueSigners:
    """The clique_* JSON-RPC calls of one node (geth ≤ 1.13), and its sealer's address."""

    def __init__(self, rpc: Rpc, sealer: str | None):
        self._rpc = rpc
        self.sealer = sealer.lower() if sealer else None

    def signers(self) -> list[str]:
        """The signers now (clique_getSigners): the genesis list as votes changed it."""
        return [str(a).lower() for a in self._rpc("clique_getSigners", [])]

    def is_signer(self) -> bool:
        """Whether this node's key is a signer now."""
        return self.sealer is not None and self.sealer in self.signers()

    def propose(self, address: str, authorize: bool) -> None:
        """This node's vote to add (or drop) a signer; a majority of signers decides."""
        self._rpc("clique_propose", [Web3.to_checksum_address(address), authorize])

    def sealing(self) -> list[str]:
        """The signers that sealed any of the last blocks (clique_status' sealer activity)."""
        activity = (self._rpc("clique_status", []) or {}).get("sealerActivity") or {}
        current = set(self.signers())
        return sorted(a.lower() for a, n in activity.items() if n and a.lower() in current)

    def check_stop(self) -> None:
        """Refuse to stop this node's sealing when too few others would still seal.

        A network of one signer is the operator's own node, whose toggle is meant to stop it.
        """
        signers = self.signers()
        if len(signers) <= 1:
            return
        need = quorum(len(signers))
        others = [a for a in self.sealing() if a != self.sealer]
        if len(others) < need:
            raise QuorumRefused(
                f"stopping this node's sealing would leave {len(others)} of {len(signers)} "
                f"signers sealing; clique needs {need} to go on making blocks, so the chain "
                "would stop for everyone (a network with sealing toggles needs at least three "
                "signers, and the others must be sealing)"
            )
