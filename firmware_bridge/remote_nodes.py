"""The signer nodes of the machines whose bridges report one, as every portal worker sees them.

A bridge on a machine running its own clique node (firmware_bridge/own_node.py) sends that
node's status over its connection; the worker it is connected to checks it and publishes it on
the board bus (as claims and readings go), so every worker's wallet view shows it. A sealing
toggle goes back to the bridge's connection through the same transport as relay commands; the
bridge answers with the node's new status or a sentence saying why not (the quorum, or its
owner's --sealing-toggle left off).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from firmware_bridge.board_bus import BoardBus
from firmware_bridge.errors import BridgeError

log = logging.getLogger(__name__)

STALE_S = 10.0  # a node whose bridge said nothing for this long is shown as not reporting
TOGGLE_TIMEOUT_S = 10.0  # how long a sealing toggle waits for the bridge's answer
_COUNTS = ("peers", "signers", "sealing_signers")
MAX_ERROR = 300  # characters of a node's error a bridge may send

Transport = Callable[[str, dict[str, Any], float], Any]


def node_status(data: Any) -> dict[str, Any]:
    """A bridge's node status, every field checked (BridgeError says which is wrong)."""
    if not isinstance(data, dict):
        raise BridgeError("a node status is an object")
    toggles = data.get("toggles")
    if not isinstance(toggles, bool):
        raise BridgeError("a node status says toggles: true or false")
    if "error" in data:
        if not isinstance(data["error"], str):
            raise BridgeError("a node status' error is a sentence")
        return {"error": data["error"][:MAX_ERROR], "toggles": toggles}
    signer = data.get("signer")
    if signer is not None and not (isinstance(signer, str) and is_hex_address(signer)):
        raise BridgeError(f"a node's signer is an address, not {signer!r}"[:200])
    if not isinstance(data.get("sealing"), bool):
        raise BridgeError("a node status says sealing: true or false")
    counts = {}
    for name in _COUNTS:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise BridgeError(f"a node's {name} is a count, not {value!r}"[:200])
        counts[name] = value
    return {"signer": to_checksum_address(signer) if signer else None,
            "sealing": data["sealing"], **counts, "toggles": toggles}


class RemoteNodes:
    """Which bridge reported which node status, and its toggle sent to that bridge."""

    def __init__(self, bus: BoardBus, transport: Transport, worker: str,
                 timeout: float = TOGGLE_TIMEOUT_S):
        self.bus, self.transport, self.worker, self.timeout = bus, transport, worker, timeout
        self._nodes: dict[str, tuple[str, dict[str, Any], float]] = {}  # bridge -> (peer, …)
        self._lock = threading.Lock()
        bus.subscribe(self._on_bus)

    def report(self, peer: str, bridge_id: str, data: Any) -> None:
        """A node status the bridge connected here (proved as bridge_id) sent: checked, then
        told to every worker; a malformed one is refused with a log line."""
        try:
            status = node_status(data)
        except BridgeError as err:
            log.warning("node status of bridge %s refused: %s", bridge_id, err)
            return
        message = {"t": "node", "w": self.worker, "peer": peer, "bridge": bridge_id,
                   "node": status}
        self._apply(message)
        self.bus.publish(message)

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Each reporting bridge's node: its status with "reporting" (heard within STALE_S)."""
        now = time.monotonic()
        with self._lock:
            held = dict(self._nodes)
        return {bridge: {**status, "reporting": now - heard < STALE_S}
                for bridge, (_, status, heard) in held.items()}

    def set_sealing(self, bridge_id: str, on: bool) -> dict[str, Any]:
        """Ask the bridge to start (on) or stop its node's sealing: its new status, or
        BridgeError with the bridge's sentence (the quorum) or why it did not answer."""
        with self._lock:
            held = self._nodes.get(bridge_id)
        if held is None or time.monotonic() - held[2] >= STALE_S:
            raise BridgeError(f"bridge {bridge_id} is not connected: its node cannot be "
                              "toggled now")
        try:
            answer = self.transport(held[0], {"action": "set_sealing", "on": on}, self.timeout)
        except (BridgeError, TimeoutError) as err:
            raise BridgeError(f"bridge {bridge_id} did not answer the toggle: {err}") from err
        if not isinstance(answer, dict) or not (answer.get("ok") or answer.get("error")):
            raise BridgeError(f"bridge {bridge_id} answered the toggle with {answer!r}"[:200])
        if answer.get("error"):
            raise BridgeError(str(answer["error"])[:MAX_ERROR])
        try:
            status = node_status(answer.get("node"))
        except BridgeError as err:
            raise BridgeError(f"bridge {bridge_id} answered the toggle oddly: {err}") from err
        self.report(held[0], bridge_id, status)
        return status

    def _on_bus(self, message: dict[str, Any]) -> None:
        # Our node reports were applied when sent; a goodbye is RemoteBoards', ours too.
        if message.get("w") != self.worker or message.get("t") == "gone":
            self._apply(message)

    def _apply(self, message: dict[str, Any]) -> None:
        kind, peer = message.get("t"), message.get("peer")
        if kind == "node" and isinstance(peer, str) and isinstance(message.get("bridge"), str):
            try:
                status = node_status(message.get("node"))
            except BridgeError as err:
                log.warning("node status on the bus refused: %s", err)
                return
            with self._lock:
                self._nodes[message["bridge"]] = (peer, status, time.monotonic())
        elif kind == "gone" and isinstance(peer, str):
            with self._lock:
                for bridge in [b for b, held in self._nodes.items() if held[0] == peer]:
                    del self._nodes[bridge]
