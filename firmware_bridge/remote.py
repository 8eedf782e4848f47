"""A bridge on another machine: its boards reach the portal over Socket.IO; its meter keys stay.

The portal sends commands (relay, budget, read); the bridge answers each through the Socket.IO
acknowledgement. Its meter keys sign one thing: each board's cumulative reading (EIP-712, in the
chain and token the portal named at hello), sent with the plain readings. There is no command to
sign anything else, so a portal cannot borrow a meter key for a transaction.

A bridge on a machine with its own clique signer node (firmware_bridge/own_node.py) also sends
that node's status ("node", every NODE_EVERY_S) and takes one more command, set_sealing, which
the node's owner allows with --sealing-toggle and the node's quorum may still refuse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import socketio
import websocket
from eth_account.signers.local import LocalAccount
from eth_utils import is_hex_address, to_checksum_address

from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import BridgeError
from firmware_bridge.own_node import OwnNode
from firmware_bridge.protocol import Reading
from firmware_bridge.signing import ReadingDomain

log = logging.getLogger(__name__)

# How long a disconnect waits for the server's WebSocket close frame. werkzeug's server (the
# portal's) never sends one after the Engine.IO close packet, so websocket-client's default
# wait of 3 s was spent on every disconnect; the close packet has already said goodbye.
CLOSE_WAIT_S = 0.25
NODE_EVERY_S = 2.0  # how often the status of this machine's own node goes to the portal


class _QuickCloseWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket, waiting CLOSE_WAIT_S (not 3 s) for the close reply."""

    def close(self, status: int = websocket.STATUS_NORMAL, reason: bytes | str = b"",
              timeout: float | None = CLOSE_WAIT_S) -> None:
        super().close(status, reason, timeout)


def socketio_client(**options: Any) -> socketio.Client:
    """A python-socketio Client whose disconnect returns at once from a werkzeug portal."""
    extra = {"class_": _QuickCloseWebSocket, **options.pop("websocket_extra_options", {})}
    return socketio.Client(websocket_extra_options=extra, **options)


class RemoteBridge:
    """Connects a local Bridge (holding its boards' meter keys) to a portal's /bridge namespace,
    sends its readings, signed ones included, and serves its relay, budget and read commands.

    Given several portal URLs (the workers of one portal), it connects to the first that
    accepts it and, when that connection drops (its worker died), to the next: any worker
    serves a bridge, since the workers share what it says over their message queue. The
    boards' relays stay as they are meanwhile: this bridge keeps their failsafe fed.
    """

    def __init__(
        self, bridge: Bridge, portal_url: str | Sequence[str], token: str,
        report_every_s: float = 0.25, *, bridge_id: str, node: OwnNode | None = None,
    ):
        self.bridge = bridge
        self.portal_urls = [portal_url] if isinstance(portal_url, str) else list(portal_url)
        if not self.portal_urls:
            raise BridgeError("a bridge needs at least one portal URL")
        self.portal_url = self.portal_urls[0]  # the one connected to (or tried) last
        self.bridge_id = bridge_id  # the id the admin registered this bridge under
        self.token = token  # … and the token it was given then
        self.report_every_s = report_every_s
        self.node = node  # this machine's own signer node, if it runs one
        self.contracts: set[str] = set()
        self.domain: ReadingDomain | None = None
        several = len(self.portal_urls) > 1
        # One portal: python-socketio reconnects to it; several: _fail_over picks the next.
        self.client = socketio_client(reconnection=not several, reconnection_delay_max=5)
        self._sent: dict[str, float] = {}
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._failing_over = threading.Lock()
        self.client.on("connect", self._on_connect, namespace="/bridge")
        self.client.on("command", self._on_command, namespace="/bridge")
        if several:
            self.client.on("disconnect", self._on_disconnect, namespace="/bridge")
        bridge.subscribe(self._on_reading)
        bridge.subscribe_events(self._on_board_event)
        if node is not None:
            threading.Thread(target=self._report_node, name="bridge-node", daemon=True).start()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect to the first portal URL that accepts the boards; BridgeError if none does."""
        errors = []
        for url in self.portal_urls:
            try:
                self._connect_to(url, timeout)
                return
            except BridgeError as err:
                errors.append(str(err))
        raise BridgeError("; ".join(errors))

    def _connect_to(self, url: str, timeout: float) -> None:
        self.portal_url = url
        self._ready.clear()
        try:
            self.client.connect(url, namespaces=["/bridge"],
                                auth={"bridge": self.bridge_id, "token": self.token},
                                wait_timeout=timeout)
        except (socketio.exceptions.ConnectionError, ValueError) as err:
            raise BridgeError(f"the portal at {url} refused the bridge: {err}") from err
        if not self._ready.wait(timeout):
            self.client.disconnect()
            raise BridgeError(f"the portal at {url} did not accept the boards")

    def close(self) -> None:
        """Disconnect from the portal (the local bridge stays open)."""
        self._closing.set()
        self.client.disconnect()

    def _on_disconnect(self, reason: Any = None) -> None:
        if not self._closing.is_set():
            threading.Thread(target=self._fail_over, name="bridge-failover", daemon=True).start()

    def _fail_over(self) -> None:
        """Try the other portal URLs (then all again, backing off) until one takes the boards."""
        if not self._failing_over.acquire(blocking=False):
            return  # another disconnect is being handled already
        try:
            # The handler runs before the client marks itself disconnected: wait for that.
            deadline = time.monotonic() + 10
            while self.client.connected and time.monotonic() < deadline:
                if self._closing.wait(0.05):
                    return
            lost = self.portal_url
            order = self.portal_urls[self.portal_urls.index(lost) + 1:] + \
                self.portal_urls[:self.portal_urls.index(lost) + 1]
            delay = 0.2
            while not self._closing.is_set() and not self.client.connected:
                for url in order:
                    if self._closing.is_set():
                        return
                    try:
                        self._connect_to(url, timeout=5.0)
                        log.warning("portal at %s lost: boards now served through %s", lost, url)
                        return
                    except BridgeError as err:
                        log.info("portal at %s not reachable: %s", url, err)
                self._closing.wait(delay)
                delay = min(delay * 2, 5.0)
        finally:
            self._failing_over.release()

    def _on_connect(self) -> None:
        boards = [
            {**asdict(info), "meter": self.bridge.meter(board_id)}
            for board_id, info in self.bridge.boards().items()
            if self.bridge.meter(board_id) is not None
        ]
        # Announced from a thread: an emit with a callback cannot wait inside the handler.
        threading.Thread(target=self._hello, args=(boards,), daemon=True).start()

    def _hello(self, boards: list[dict[str, Any]]) -> None:
        answer = self.client.call("hello", {"boards": boards}, namespace="/bridge", timeout=10)
        if not answer or "error" in answer:
            log.error("portal refused the boards: %s", answer)
            return
        self.contracts = {to_checksum_address(a) for a in answer["contracts"]}
        chain_id, token = answer.get("chain_id"), answer.get("token")
        if isinstance(chain_id, int) and not isinstance(chain_id, bool) \
                and isinstance(token, str) and is_hex_address(token):
            self.domain = ReadingDomain(chain_id, to_checksum_address(token))
            self.bridge.set_reading_domain(self.domain)
        else:  # an older portal: plain readings only, which no contract takes as evidence
            log.error("the portal named no chain id and token: readings go unsigned")
        self._ready.set()
        log.info("portal accepted boards %s", [b["board_id"] for b in boards])
        if self.node is not None:
            self._emit("node", self.node.status())  # the wallet view shows it at once

    def _report_node(self) -> None:
        """Send the own node's status every NODE_EVERY_S while connected (its RPC off the
        Socket.IO threads: a node that hangs holds up no command)."""
        assert self.node is not None
        while not self._closing.wait(NODE_EVERY_S):
            if self._ready.is_set() and self.client.connected:
                self._emit("node", self.node.status())

    def _on_reading(self, board_id: str, reading: Reading) -> None:
        now = time.monotonic()
        if now - self._sent.get(board_id, 0.0) < self.report_every_s:
            return
        self._sent[board_id] = now
        signed = self.bridge.signed_reading(board_id)
        self._emit("reading", {"board_id": board_id, "reading": asdict(reading),
                               "signed": None if signed is None else signed.to_json()})

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
            if isinstance(data, dict) and data.get("action") == "set_sealing":
                return self._set_sealing(data)
            board_id, action = data["board_id"], data["action"]
            if action == "set_relay":
                self.bridge.set_relay(board_id, bool(data["on"]), int(data.get("relay", 0)))
                return {"ok": True}
            if action == "set_budget":
                self.bridge.set_budget(board_id, data["wh"], int(data.get("relay", 0)))
                return {"ok": True}
            if action == "read":
                return {"reading": asdict(self.bridge.read(board_id))}
            # Nothing else, "sign" above all: a meter key signs readings, never transactions.
            return {"error": f"unknown command {action!r}"}
        except (BridgeError, KeyError, TypeError, ValueError) as err:
            return {"error": str(err) or type(err).__name__}

    def _set_sealing(self, data: dict[str, Any]) -> dict[str, Any]:
        """The portal's sealing toggle for this machine's node: as OwnNode allows it."""
        if self.node is None:
            log.warning("refused a sealing toggle: this bridge serves no node of its own")
            return {"error": "this machine's bridge was started without --node: it has no "
                             "node of its own to toggle"}
        answer = self.node.set_sealing(data.get("on"))
        if "node" in answer:
            self._emit("node", answer["node"])
        return answer


def run_bridge(
    boards: list[str], portal_url: str | Sequence[str], bridge_id: str, token: str,
    keys: Callable[[str], LocalAccount], stop: threading.Event, odometer_dir: Path | None = None,
    *, wait: bool = False, node: OwnNode | None = None,
) -> None:
    """Attach the boards by URI (their meter keys from keys(board id), their counters
    continued in odometer_dir), connect to the portal (the first of its URLs that accepts;
    wait: keep trying until one does, for a bridge started before its portal serves) and
    serve until stop is set; node: this machine's own signer node, reported and toggled."""
    bridge = Bridge(meter_keys=keys, odometer_dir=odometer_dir)
    try:
        bridge.attach_all(boards)
        remote = RemoteBridge(bridge, portal_url, token, bridge_id=bridge_id, node=node)
        delay = 0.2
        while True:
            try:
                remote.connect()
                break
            except BridgeError as err:
                if not wait or stop.is_set():
                    raise
                log.info("portal not accepting the bridge yet (%s); trying again", err)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
        stop.wait()
        remote.close()
    finally:
        bridge.close()
