"""The /bridge Socket.IO channel remote bridges connect to, and the transport commands take."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import Namespace, disconnect
from socketio.exceptions import SocketIOError

from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_boards import RemoteBoards
from web import registry
from web.extensions import socketio
from web.state import portal

log = logging.getLogger(__name__)


def send_command(peer: str, command: dict[str, Any], timeout: float) -> Any:
    """Send a command to the bridge on Socket.IO connection peer; its acknowledgement answers.

    python-socketio's own TimeoutError is no builtin TimeoutError: it (and a connection gone
    mid-call) becomes a BridgeError here, the one error the boards' callers handle.
    """
    try:
        return socketio.call("command", command, to=peer, namespace="/bridge", timeout=timeout)
    except SocketIOError as err:
        raise BridgeError(f"the bridge of {command.get('board_id')} did not answer "
                          f"{command.get('action')}: {type(err).__name__} {err}") from err


def hear_queue() -> None:
    """Start this worker's message-queue listener now, before any client connects.

    python-socketio starts it on a server's first connection: a worker no browser or bridge
    has connected to yet (one that only settles) would never hear a bridge's answer to its
    command through the queue, and every call would time out. Call once, before serving.
    """
    server = socketio.server
    if server is not None and not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()


class BridgeNamespace(Namespace):
    """Remote bridges connect here each with its own registered credential, then claim the
    boards registered to them."""

    def on_connect(self, auth: Any = None) -> bool:
        bridge_id = auth.get("bridge") if isinstance(auth, dict) else None
        token = auth.get("token") if isinstance(auth, dict) else None
        row = (registry.authenticate(portal().runtime.store, bridge_id, token)
               if isinstance(bridge_id, str) and isinstance(token, str) else None)
        if row is None:
            log.warning("bridge %r refused: unknown, revoked or a wrong token (%s)",
                        bridge_id, request.remote_addr)
            return False
        boards = registry.boards_of(row)
        _remote_boards().admit(request.sid, row["id"],
                               {b["board_id"]: b["meter"] for b in boards},
                               {b["board_id"]: b["time_factor"] for b in boards})
        return True

    def on_hello(self, data: Any) -> dict[str, Any]:
        offered = data.get("boards") if isinstance(data, dict) else None
        try:
            _remote_boards().announce(request.sid, offered)
        except BridgeError as err:
            log.warning("hello refused: %s", err)
            return {"error": str(err)}
        ledger = portal().runtime.ledger
        domain = ledger.reading_domain()  # where the bridge's meter keys sign readings
        return {"contracts": list(ledger.addresses().values()), "chain_id": domain.chain_id,
                "token": domain.token}

    def on_reading(self, data: Any) -> None:
        remote = _remote_boards()
        if not remote.admitted(request.sid):  # revoked, perhaps through another worker
            disconnect(request.sid, namespace="/bridge")
            return
        remote.report(request.sid, data)

    def on_node(self, data: Any) -> None:
        """The status of the bridge machine's own signer node (docs/GETH.md)."""
        remote = _remote_boards()
        bridge_id = remote.bridge_of.get(request.sid)
        if bridge_id is None:  # revoked, perhaps through another worker
            disconnect(request.sid, namespace="/bridge")
            return
        remote.nodes.report(request.sid, bridge_id, data)

    def on_event(self, data: Any) -> None:
        if isinstance(data, dict):
            log.info("board %s said %s %s", data.get("board_id"), data.get("verb"),
                     data.get("args"))

    def on_disconnect(self, reason: Any = None) -> None:
        _remote_boards().disconnect(request.sid)


def _remote_boards() -> RemoteBoards:
    return portal().runtime.remote_boards


def disconnect_bridge(bridge_id: str) -> None:
    """Close the connections of a bridge whose credential was revoked (on this worker)."""
    for peer in _remote_boards().peers_of(bridge_id):
        socketio.server.disconnect(peer, namespace="/bridge")
