"""A bridge on another machine: its boards reach the portal over Socket.IO; its meter keys stay.

The portal sends commands (relay, budget, read, sign); the bridge answers each through the
Socket.IO acknowledgement. It signs only meter transactions — `mintReading` and
`reportDelivery` to the contracts the portal named at hello, with no Ether — so a portal
cannot make a meter key sign anything else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import socketio
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from geth_private.signer import Signer

log = logging.getLogger(__name__)

METER_CALLS = {
    "0x" + function_signature_to_4byte_selector(signature).hex()
    for signature in ("mintReading(uint256)", "reportDelivery(uint256,uint256)")
}


class RemoteBridge:
    """Connects a local Bridge to a portal's /bridge namespace and serves its commands."""

    def __init__(
        self,
        bridge: Bridge,
        portal_url: str,
        token: str,
        meter_keys: dict[str, Signer],
        report_every_s: float = 0.25,
        *,
        bridge_id: str,
    ):
        self.bridge = bridge
        self.portal_url = portal_url
        self.bridge_id = bridge_id  # the id the admin registered this bridge under
        self.token = token  # … and the token it was given then
        self.meter_keys = meter_keys
        self.report_every_s = report_every_s
        self.contracts: set[str] = set()
        self.client = socketio.Client(reconnection=True, reconnection_delay_max=5)
        self._sent: dict[str, float] = {}
        self._ready = threading.Event()
        self.client.on("connect", self._on_connect, namespace="/bridge")
        self.client.on("command", self._on_command, namespace="/bridge")
        bridge.subscribe(self._on_reading)
        bridge.subscribe_events(self._on_board_event)

    def connect(self, timeout: float = 10.0) -> None:
        """Connect and announce the boards; returns once the portal accepted them."""
        try:
            self.client.connect(self.portal_url, namespaces=["/bridge"],
                                auth={"bridge": self.bridge_id, "token": self.token},
                                wait_timeout=timeout)
        except socketio.exceptions.ConnectionError as err:
            raise BridgeError(f"the portal at {self.portal_url} refused the bridge: {err}") from err
        if not self._ready.wait(timeout):
            raise BridgeError(f"the portal at {self.portal_url} did not accept the boards")

    def close(self) -> None:
        """Disconnect from the portal (the local bridge stays open)."""
        self.client.disconnect()

    def _on_connect(self) -> None:
        boards = [
            {**asdict(info), "meter": self.meter_keys[board_id].address}
            for board_id, info in self.bridge.boards().items()
            if board_id in self.meter_keys
        ]
        # Announced from a thread: an emit with a callback cannot wait inside the handler.
        threading.Thread(target=self._hello, args=(boards,), daemon=True).start()

    def _hello(self, boards: list[dict[str, Any]]) -> None:
        answer = self.client.call("hello", {"boards": boards}, namespace="/bridge", timeout=10)
        if not answer or "error" in answer:
            log.error("portal refused the boards: %s", answer)
            return
        self.contracts = {to_checksum_address(a) for a in answer["contracts"]}
        self._ready.set()
        log.info("portal accepted boards %s", [b["board_id"] for b in boards])

    def _on_reading(self, board_id: str, reading: Reading) -> None:
        now = time.monotonic()
        if now - self._sent.get(board_id, 0.0) < self.report_every_s:
            return
        self._sent[board_id] = now
        self._emit("reading", {"board_id": board_id, "reading": asdict(reading)})

    def _on_board_event(self, board_id: str, verb: str, args: tuple[str, ...]) -> None:
        self._emit("event", {"board_id": board_id, "verb": verb, "args": list(args)})

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        """Send news to the portal while connected; while it is away the news is dropped."""
        if not self._ready.is_set() or not self.client.connected:
            return
        try:
            self.client.emit(event, data, namespace="/bridge")
        except socketio.exceptions.SocketIOError as err:
            log.debug("portal unreachable, %s dropped: %s", event, err)

    def _on_command(self, data: dict[str, Any]) -> dict[str, Any]:
        """One command from the portal; the result (or an error sentence) goes back as the ack."""
        try:
            board_id, action = data["board_id"], data["action"]
            if action == "set_relay":
                self.bridge.set_relay(board_id, bool(data["on"]), int(data.get("relay", 0)))
                return {"ok": True}
            if action == "set_budget":
                self.bridge.set_budget(board_id, data["wh"], int(data.get("relay", 0)))
                return {"ok": True}
            if action == "read":
                return {"reading": asdict(self.bridge.read(board_id))}
            if action == "sign":
                return self._sign(board_id, data["tx"])
            return {"error": f"unknown command {action!r}"}
        except (BridgeError, KeyError, TypeError, ValueError) as err:
            return {"error": str(err) or type(err).__name__}

    def _sign(self, board_id: str, tx: dict[str, Any]) -> dict[str, Any]:
        key = self.meter_keys.get(board_id)
        if key is None:
            return {"error": f"no meter key for board {board_id}"}
        if to_checksum_address(tx.get("to", "0x" + "0" * 40)) not in self.contracts:
            return {"error": "refused: not one of the portal's contracts"}
        if int(tx.get("value", 0)) != 0 or tx.get("data", "")[:10] not in METER_CALLS:
            return {"error": "refused: a meter key signs only mintReading and reportDelivery"}
        signed = key.sign_transaction(tx)
        return {"hash": "0x" + signed.hash.hex().removeprefix("0x"),
                "raw": "0x" + bytes(signed.raw_transaction).hex()}


def run_bridge(
    ports: list[str], portal_url: str, bridge_id: str, token: str,
    keys: Callable[[str], Signer], stop: threading.Event,
) -> None:
    """Attach the ports, connect to the portal and serve until stop is set."""
    bridge = Bridge()
    try:
        for port in ports:
            bridge.attach(port)
        remote = RemoteBridge(bridge, portal_url, token,
                              {board_id: keys(board_id) for board_id in bridge.boards()},
                              bridge_id=bridge_id)
        remote.connect()
        stop.wait()
        remote.close()
    finally:
        bridge.close()
