"""Boards a bridge on another machine serves, as the portal sees them, and their signed readings.

The portal reaches each remote bridge through a transport it is given (Socket.IO in the web
layer), so this module needs no web framework: it keeps which bridge serves which board and
what each board last reported, and turns commands and answers into Boards calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

from firmware_bridge.boards import Boards
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.signing import ReadingDomain, SignedReading

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0

Transport = Callable[[str, dict[str, Any], float], Any]
"""(peer, command, timeout s) -> the bridge's answer; raises TimeoutError when none came."""


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
        self.signed: dict[str, SignedReading] = {}  # board id -> its meter's latest signed one
        self.meters: dict[str, str] = {}  # board id -> the meter address its bridge announced
        self.domain: ReadingDomain | None = None  # where signed readings count (set at deploy)
        self.lock = threading.Lock()
        self._listeners: list[Callable[[str, str, str], None]] = []

    def subscribe(self, listener: Callable[[str, str, str], None]) -> None:
        """Call listener(board id, kind, meter address) whenever a bridge announces a board."""
        self._listeners.append(listener)

    def set_reading_domain(self, domain: ReadingDomain) -> None:
        """Keep only signed readings of this chain and token from now on."""
        self.domain = domain

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
                self.meters[board["board_id"]] = board["meter"]
        for board in offered:
            for listener in list(self._listeners):
                listener(board["board_id"], board["kind"], board["meter"])

    def report(self, peer: str, data: Any) -> None:
        """A reading a bridge sent unasked; ignored unless the board is that bridge's."""
        board_id = data.get("board_id") if isinstance(data, dict) else None
        if self.sid.get(board_id) != peer:
            return
        try:
            self.latest[board_id] = reading_from_json(data["reading"])
        except (KeyError, TypeError, ValueError) as err:
            log.warning("bad reading from the bridge of %s: %s", board_id, err)
        if data.get("signed") is not None:
            self._keep_signed(board_id, data["signed"])

    def _keep_signed(self, board_id: str, data: Any) -> None:
        """Keep a signed reading only when the board's meter signed it for this domain."""
        try:
            signed = SignedReading.from_json(data)
        except BridgeError as err:
            log.warning("bad signed reading from the bridge of %s: %s", board_id, err)
            return
        announced = str(self.meters.get(board_id, "")).lower()
        if self.domain is None or signed.meter.lower() != announced \
                or not signed.signed_by_meter(self.domain):
            log.warning("signed reading of %s not by its meter here: dropped", board_id)
            return
        last = self.signed.get(board_id)
        if last is None or signed.timestamp > last.timestamp:
            self.signed[board_id] = signed

    def disconnect(self, peer: str) -> None:
        """A bridge went away: its boards are offline until it (or another) announces them."""
        with self.lock:
            for board_id in [b for b, sid in self.sid.items() if sid == peer]:
                del self.sid[board_id]
                log.warning("board %s went offline with its bridge", board_id)

    # -- what the portal asks --------------------------------------------------------------

    def command(self, board_id: str, action: str, **data: Any) -> dict[str, Any]:
        """Run a command on the board's bridge and return its answer; BridgeError if it fails."""
        with self.lock:
            peer = self.sid.get(board_id)
        if peer is None:
            raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
        try:
            answer = self.transport(
                peer, {"board_id": board_id, "action": action, **data}, self.timeout
            )
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
        """Close (on) or open a relay on the board's bridge."""
        self.command(board_id, "set_relay", on=on, relay=relay)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Give a relay a Wh budget on the board's bridge."""
        self.command(board_id, "set_budget", wh=wh, relay=relay)

    def online(self, board_id: str) -> bool:
        """Whether the board's bridge is connected."""
        return board_id in self.sid

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading its bridge sent, without asking."""
        return self.latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """A reading asked of the board through its bridge now."""
        reading = reading_from_json(self.command(board_id, "read")["reading"])
        self.latest[board_id] = reading
        return reading

    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The latest signed reading its bridge sent (no I/O)."""
        return self.signed.get(board_id)


def reading_from_json(data: dict[str, Any]) -> Reading:
    """A reading sent as JSON, with its tuples restored."""
    return Reading(**{**data, "relays": tuple(data["relays"]),
                      "budgets": tuple(data.get("budgets", ()))})
