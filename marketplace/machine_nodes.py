"""The participants' own signer nodes in their wallets: each machine's node, and its toggle.

A bridge on a machine with its own clique node reports the node (firmware_bridge/own_node.py,
firmware_bridge/remote_nodes.py); the node is the machine's owner's: the participant seated
on a board registered to that bridge (docs/BRIDGES.md). Only that person's wallet lists it and
may toggle it, and the bridge still takes only what its owner allowed (--sealing-toggle) and
what the quorum allows, so the portal cannot toggle another person's node beyond that.
"""

from __future__ import annotations

from typing import Any, Protocol

from firmware_bridge.errors import BridgeError
from marketplace.errors import InvalidInput, NodeRefused, NotAllowed
from marketplace.store import Store


class ReportedNodes(Protocol):
    """The nodes bridges report (firmware_bridge.remote_nodes.RemoteNodes)."""

    def nodes(self) -> dict[str, dict[str, Any]]: ...
    def set_sealing(self, bridge_id: str, on: bool) -> dict[str, Any]: ...


class MachineNodes:
    """Which reported nodes are whose, as a wallet shows them, and the owner's toggle."""

    def __init__(self, store: Store, reported: ReportedNodes):
        self.store = store
        self.reported = reported

    def _bridges_of(self, address: str) -> list[str]:
        """The bridges serving the person's board: their machines' nodes are the person's."""
        who = self.store.participant(address) or {}
        board = who.get("board_id")
        if not board:
            return []
        return [row["id"] for row in self.store.bridges()
                if any(b["board_id"] == board for b in row["boards"])]

    def of(self, address: str) -> list[dict[str, Any]]:
        """The person's machines' nodes: {bridge, signer, sealing, peers, …, reporting}."""
        reported = self.reported.nodes()
        return [{"bridge": bridge, **reported[bridge]}
                for bridge in self._bridges_of(address) if bridge in reported]

    def set_sealing(self, address: str, bridge_id: object, on: object) -> dict[str, Any]:
        """The owner's toggle of their machine's node: its new status, or NodeRefused with
        the bridge's sentence (a stop below the quorum, toggles not allowed, no answer)."""
        if not isinstance(on, bool):
            raise InvalidInput("'on' must be true or false")
        if not isinstance(bridge_id, str) or bridge_id not in self._bridges_of(address):
            raise NotAllowed("that machine's node is not yours: only the person whose board "
                             "its bridge serves may start or stop its sealing")
        try:
            status = self.reported.set_sealing(bridge_id, on)
        except BridgeError as err:
            raise NodeRefused(str(err)) from err
        return {"bridge": bridge_id, **status, "reporting": True}
