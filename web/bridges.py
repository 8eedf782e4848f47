"""The /bridge Socket.IO channel remote bridges connect to, and the transport commands take."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import current_app, request
from flask_socketio import Namespace
from socketio.exceptions import SocketIOError

from firmware_bridge.errors import BridgeError
from firmware_bridge.remote_boards import RemoteBoards
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


class BridgeNamespace(Namespace):
    """Remote bridges connect here with the portal's bridge token and announce their boards."""

    def on_connect(self, auth: Any = None) -> bool:
        token = current_app.config["BRIDGE_TOKEN"]
        given = auth.get("token", "") if isinstance(auth, dict) else ""
        if not hmac.compare_digest(str(given), token):
            log.warning("a bridge with a wrong token was refused (%s)", request.remote_addr)
            return False
        return True

    def on_hello(self, data: Any) -> dict[str, Any]:
        offered = data.get("boards") if isinstance(data, dict) else None
        try:
            _remote_boards().announce(request.sid, offered)
        except BridgeError as err:
            return {"error": str(err)}
        return {"contracts": list(portal().runtime.ledger.addresses().values())}

    def on_reading(self, data: Any) -> None:
        _remote_boards().report(request.sid, data)

    def on_event(self, data: Any) -> None:
        if isinstance(data, dict):
            log.info("board %s said %s %s", data.get("board_id"), data.get("verb"),
                     data.get("args"))

    def on_disconnect(self, reason: Any = None) -> None:
        _remote_boards().disconnect(request.sid)


def _remote_boards() -> RemoteBoards:
    return portal().runtime.remote_boards
