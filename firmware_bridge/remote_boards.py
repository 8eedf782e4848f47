"""Boards a bridge on another machine serves, as the portal sees them, and their meter keys.

The portal reaches each remote bridge through a transport it is given (Socket.IO in the web
layer), so this module needs no web framework: it keeps which bridge serves which board and
what each board last reported, and turns commands and answers into Boards calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from firmware_bridge.board_sender import BoardSender
from firmware_bridge.boards import Boards
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from geth_private.signer import Signer

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0

Transport = Callable[[str, dict[str, Any], float], Any]
"""(peer, command, timeout s) -> the bridge's answer; raises BridgeError (or TimeoutError) when
none came."""


class RemoteBoards(Boards):
    """Which remote bridge (peer) serves which board, and what its boards last reported."""

    def __init__(
        self, allowed: Collection[str], transport: Transport, timeout: float = COMMAND_TIMEOUT_S
    ):
        self.allowed = set(allowed)  # board ids the portal expects from remote bridges
        self.transport = transport
        self.timeout = timeout
        self.sid: dict[str, str] = {}  # board id -> the connection (peer) of its bridge
        self.latest: dict[str, Reading] = {}
        self.lock = threading.Lock()
        self._listeners: list[Callable[[str, str, RemoteMeter], None]] = []
        self._senders: dict[str, BoardSender] = {}  # board id -> its relay/budget commands

    def subscribe(self, listener: Callable[[str, str, RemoteMeter], None]) -> None:
        """Call listener(board id, kind, meter) whenever a bridge announces a board."""
        self._listeners.append(listener)

    # -- what bridges say ------------------------------------------------------------------

    def announce(self, peer: str, offered: Any) -> None:
        """A bridge's hello: it serves these boards; BridgeError says why they are refused."""
        if not isinstance(offered, list) or not offered:
            raise BridgeError("hello needs a list of boards")
        unknown = [b.get("board_id") for b in offered if not self.serves(b.get("board_id"))]
        if unknown:
            raise BridgeError(f"this portal expects no remote boards {unknown}")
        with self.lock:
            taken = [b["board_id"] for b in offered
                     if self.sid.get(b["board_id"]) not in (None, peer)]
            if taken:
                raise BridgeError(f"boards {taken} are already served by another bridge")
            for board in offered:
                self.sid[board["board_id"]] = peer
        for board in offered:
            meter = RemoteMeter(board["meter"], board["board_id"], self)
            for listener in list(self._listeners):
                listener(board["board_id"], board["kind"], meter)

    def report(self, peer: str, data: Any) -> None:
        """A reading a bridge sent unasked; ignored unless the board is that bridge's."""
        board_id = data.get("board_id") if isinstance(data, dict) else None
        if self.sid.get(board_id) != peer:
            return
        try:
            self.latest[board_id] = reading_from_json(data["reading"])
        except (KeyError, TypeError, ValueError) as err:
            log.warning("bad reading from the bridge of %s: %s", board_id, err)

    def disconnect(self, peer: str) -> None:
        """A bridge went away: its boards are offline until it (or another) announces them."""
        with self.lock:
            for board_id in [b for b, sid in self.sid.items() if sid == peer]:
                del self.sid[board_id]
                log.warning("board %s went offline with its bridge", board_id)

    # -- what the portal asks --------------------------------------------------------------

    def command(self, board_id: str, action: str, **data: Any) -> dict[str, Any]:
        """Run a command on the board's bridge and return its answer; BridgeError if it fails.

        It waits up to the timeout for the bridge: never call it holding the market's lock
        (relays and budgets go through the board's sender instead).
        """
        with self.lock:
            peer = self.sid.get(board_id)
        if peer is None:
            raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
        try:
            answer = self.transport(
                peer, {"board_id": board_id, "action": action, **data}, self.timeout
            )
        except BridgeError:
            raise
        except TimeoutError as err:
            raise BridgeError(f"the bridge of {board_id} did not answer {action}") from err
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise BridgeError(f"the bridge of {board_id} refused {action}: {error}")
        return answer

    def expect(self, board_id: str) -> None:
        """A board a remote bridge will serve from now on (a participant the admin seated)."""
        with self.lock:
            self.allowed.add(board_id)

    def serves(self, board_id: str) -> bool:
        """Whether a remote bridge is expected to serve this board."""
        return board_id in self.allowed

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Have the board's bridge close (on) or open a relay; returns once it is queued.

        The board's sender delivers it (the state asked last wins), so a bridge that never
        answers holds up no caller; BridgeError now only when the bridge is not connected.
        """
        self._queue(board_id, "set_relay", relay, on=on)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Have the board's bridge give a relay a Wh budget; queued as set_relay is."""
        self._queue(board_id, "set_budget", relay, wh=wh)

    def sent(self, board_id: str) -> bool:
        """Whether every relay and budget command for the board was answered by its bridge."""
        with self.lock:
            sender = self._senders.get(board_id)
        return sender is None or sender.idle()

    def _queue(self, board_id: str, action: str, relay: int, **data: Any) -> None:
        with self.lock:
            if board_id not in self.sid:
                raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
            sender = self._senders.get(board_id)
            if sender is None:
                sender = self._senders[board_id] = BoardSender(
                    board_id, lambda c, b=board_id: self.command(b, **c))
        sender.put((action, relay), {"action": action, "relay": relay, **data})

    def online(self, board_id: str) -> bool:
        """Whether the board's bridge is connected."""
        return board_id in self.sid

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading its bridge sent, without asking."""
        return self.latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """The latest reading its bridge sent (it reports several a second): asking it would
        wait on a bridge that may never answer. BridgeError when offline or none came yet."""
        with self.lock:
            online = board_id in self.sid
        reading = self.latest.get(board_id)
        if not online or reading is None:
            raise BridgeError(f"board {board_id} has no reading: its bridge is "
                              + ("silent" if online else "not connected"))
        return reading


@dataclass(frozen=True)
class RemoteSignedTx:
    """A transaction a remote bridge signed with a meter key."""

    hash: bytes
    raw_transaction: bytes


class RemoteMeter(Signer):
    """A meter key held by a remote bridge: it signs meter transactions there, never here."""

    def __init__(self, address: str, board_id: str, boards: RemoteBoards):
        self._address = address
        self.board_id = board_id
        self.boards = boards

    @property
    def address(self) -> str:
        """The meter account's address, as the bridge announced it."""
        return self._address

    def sign_transaction(self, tx: dict[str, Any]) -> RemoteSignedTx:
        """Ask the bridge to sign a meter transaction; BridgeError if it refuses or is away."""
        answer = self.boards.command(self.board_id, "sign", tx=tx)
        return RemoteSignedTx(hash=bytes.fromhex(answer["hash"][2:]),
                              raw_transaction=bytes.fromhex(answer["raw"][2:]))


def reading_from_json(data: dict[str, Any]) -> Reading:
    """A reading sent as JSON, with its tuples restored."""
    return Reading(**{**data, "relays": tuple(data["relays"]),
                      "budgets": tuple(data.get("budgets", ()))})
