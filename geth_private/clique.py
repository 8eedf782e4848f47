"""A clique network's signers seen from one node: who signs, who seals, votes, and the quorum
a sealing toggle must keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3 import Web3

from geth_private.errors import QuorumRefused

Rpc = Callable[[str, list[Any]], Any]
RECENT_ROUNDS = 2  # rounds of N blocks in which a signer must have sealed to count as sealing


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
        """The signers that sealed any of the last RECENT_ROUNDS·N blocks (their authors).

        Each signer still sealing gets its in-turn slot once in every N blocks, so one that
        sealed none of the last 2·N has stopped. Not clique_status: its sealerActivity counts
        the last 64 blocks, in which a signer that just stopped (its toggle, or its machine off)
        still counts for minutes, and a second toggle meanwhile would halt the chain.
        """
        current = self.signers()
        head = _number(self._rpc("eth_blockNumber", []))
        first = max(1, head - RECENT_ROUNDS * len(current) + 1)  # block 0 has no seal
        authors = {str(self._rpc("clique_getSigner", [hex(n)])).lower()
                   for n in range(first, head + 1)}
        return sorted(a for a in current if a in authors)

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


def _number(reply: Any) -> int:
    """A block number as the raw JSON-RPC reply has it (0x-hex), or already an int."""
    return int(reply, 16) if isinstance(reply, str) else int(reply)
