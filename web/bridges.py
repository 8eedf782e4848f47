"""Boards on other machines: the /bridge Socket.IO channel and a grid that routes by board id."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from flask import current_app, request
from flask_socketio import Namespace

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from web.extensions import socketio
from web.state import portal

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0


class RemoteBoards:
    """Which remote bridge serves which board, and what its boards last reported."""

    def __init__(self, allowed: set[str], on_new: Callable[[str, str, str], None]):
        self.allowed = allowed  # board ids the portal expects from remote bridges
        self.on_new = on_new  # (board id, kind, meter address) when a board first appears
        self.sid: dict[str, str] = {}
        self.latest: dict[str, Reading] = {}
        self.lock = threading.Lock()

    def owns(self, board_id: str) -> bool:
        """Whether a remote bridge is expected to serve this board."""
        return board_id in self.allowed

    def command(self, board_id: str, action: str, **data: Any) -> dict[str, Any]:
        """Run a command on the board's bridge and return its answer; BridgeError if it fails."""
        with self.lock:
            sid = self.sid.get(board_id)
        if sid is None:
            raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
        try:
            answer = socketio.call("command", {"board_id": board_id, "action": action, **data},
                                   to=sid, namespace="/bridge", timeout=COMMAND_TIMEOUT_S)
        except TimeoutError as err:
            raise BridgeError(f"the bridge of {board_id} did not answer {action}") from err
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise BridgeError(f"the bridge of {board_id} refused {action}: {error}")
        return answer


class GridRouter:
    """The market's Grid: boards attached here go to the local bridge, the rest to remote ones."""

    def __init__(self, local: Any, remote: RemoteBoards):
        self.local = local
        self.remote = remote

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a relay, wherever its board is."""
        if self.remote.owns(board_id):
            self.remote.command(board_id, "set_relay", on=on, relay=relay)
        else:
            self.local.set_relay(board_id, on, relay)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Give a relay a local Wh budget, wherever its board is."""
        if self.remote.owns(board_id):
            self.remote.command(board_id, "set_budget", wh=wh, relay=relay)
        else:
            self.local.set_budget(board_id, wh, relay)

    def online(self, board_id: str) -> bool:
        """Whether the board can be reached now (its bridge connected, its port open)."""
        if self.remote.owns(board_id):
            return board_id in self.remote.sid
        return self.local.online(board_id)

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading, without asking the board."""
        if self.remote.owns(board_id):
            return self.remote.latest.get(board_id)
        return self.local.reading(board_id)

    def read(self, board_id: str) -> Reading:
        """A reading asked of the board now."""
        if self.remote.owns(board_id):
            reading = Reading(**_reading_args(self.remote.command(board_id, "read")["reading"]))
            self.remote.latest[board_id] = reading
            return reading
        return self.local.read(board_id)


class RemoteMeter:
    """A meter key held by a remote bridge, usable wherever the portal signs as that meter."""

    def __init__(self, address: str, board_id: str, boards: RemoteBoards):
        self.address = address
        self.board_id = board_id
        self.boards = boards

    def sign_transaction(self, tx: dict[str, Any]) -> SimpleNamespace:
        """Ask the bridge to sign a meter transaction; shaped like eth-account's result."""
        answer = self.boards.command(self.board_id, "sign", tx=tx)
        return SimpleNamespace(hash=bytes.fromhex(answer["hash"][2:]),
                               raw_transaction=bytes.fromhex(answer["raw"][2:]))


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
        boards = _remote_boards()
        offered = data.get("boards") if isinstance(data, dict) else None
        if not isinstance(offered, list) or not offered:
            return {"error": "hello needs a list of boards"}
        unknown = [b.get("board_id") for b in offered if not boards.owns(b.get("board_id"))]
        if unknown:
            return {"error": f"this portal expects no remote boards {unknown}"}
        with boards.lock:
            taken = [b["board_id"] for b in offered
                     if boards.sid.get(b["board_id"]) not in (None, request.sid)]
            if taken:
                return {"error": f"boards {taken} are already served by another bridge"}
            for board in offered:
                boards.sid[board["board_id"]] = request.sid
        for board in offered:
            boards.on_new(board["board_id"], board["kind"], board["meter"])
        return {"contracts": list(portal().runtime.ledger.addresses().values())}

    def on_reading(self, data: Any) -> None:
        boards = _remote_boards()
        board_id = data.get("board_id") if isinstance(data, dict) else None
        if boards.sid.get(board_id) != request.sid:
            return  # not this bridge's board: ignored
        try:
            boards.latest[board_id] = Reading(**_reading_args(data["reading"]))
        except (KeyError, TypeError, ValueError) as err:
            log.warning("bad reading from the bridge of %s: %s", board_id, err)

    def on_event(self, data: Any) -> None:
        if isinstance(data, dict):
            log.info("board %s said %s %s", data.get("board_id"), data.get("verb"),
                     data.get("args"))

    def on_disconnect(self, reason: Any = None) -> None:
        boards = _remote_boards()
        with boards.lock:
            for board_id in [b for b, sid in boards.sid.items() if sid == request.sid]:
                del boards.sid[board_id]
                log.warning("board %s went offline with its bridge", board_id)


def _remote_boards() -> RemoteBoards:
    return portal().runtime.remote_boards


def _reading_args(data: dict[str, Any]) -> dict[str, Any]:
    """A reading sent as JSON, with its tuples restored."""
    return {**data, "relays": tuple(data["relays"]), "budgets": tuple(data.get("budgets", ()))}
