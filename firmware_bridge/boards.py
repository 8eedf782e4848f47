"""The one seam to meter boards: switch relays, set budgets, read meters, wherever a board is."""

from __future__ import annotations

from abc import ABC, abstractmethod

from firmware_bridge.protocol import Reading
from firmware_bridge.signing import SignedReading


class Boards(ABC):
    """A set of boards by id: the local bridge's, remote bridges', or a router over both."""

    @abstractmethod
    def serves(self, board_id: str) -> bool:
        """Whether this set is where the board is to be found."""

    @abstractmethod
    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a relay; returns once the board confirmed it (a remote board:
        once queued for its bridge, which a sender of the board's own delivers)."""

    @abstractmethod
    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Let a relay pass at most wh more Wh before the board opens it (None: no limit)."""

    @abstractmethod
    def online(self, board_id: str) -> bool:
        """Whether the board can be reached now."""

    @abstractmethod
    def reading(self, board_id: str) -> Reading | None:
        """The latest reading, without asking the board; None if none came yet."""

    @abstractmethod
    def read(self, board_id: str) -> Reading:
        """A reading asked of the board now (a remote board: the latest its bridge sent)."""

    @abstractmethod
    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The latest reading its meter key signed (no I/O); None if none came yet."""


class BoardRouter(Boards):
    """The remote boards by id, every other board to the local bridge (which names one it lacks)."""

    def __init__(self, local: Boards, remote: Boards):
        self.local = local
        self.remote = remote

    def _for(self, board_id: str) -> Boards:
        return self.remote if self.remote.serves(board_id) else self.local

    def serves(self, board_id: str) -> bool:
        """Whether either set serves the board."""
        return self.remote.serves(board_id) or self.local.serves(board_id)

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a relay, wherever its board is."""
        self._for(board_id).set_relay(board_id, on, relay)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Give a relay a local Wh budget, wherever its board is."""
        self._for(board_id).set_budget(board_id, wh, relay)

    def online(self, board_id: str) -> bool:
        """Whether the board can be reached now (its bridge connected, its port open)."""
        return self._for(board_id).online(board_id)

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading, without asking the board."""
        return self._for(board_id).reading(board_id)

    def read(self, board_id: str) -> Reading:
        """A reading asked of the board now."""
        return self._for(board_id).read(board_id)

    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The latest signed reading, wherever its board is."""
        return self._for(board_id).signed_reading(board_id)
