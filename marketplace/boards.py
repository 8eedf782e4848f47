"""What the market needs of the meter boards (a seam: the local bridge, a remote one, a router)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Boards(Protocol):
    """The meter boards as the market uses them: switch relays, set budgets, read meters."""

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a board's relay."""
        ...

    def reading(self, board_id: str) -> Any:
        """The latest reading (wh_in, wh_out, power_w; soc, pv_w on producers) or None."""
        ...

    def read(self, board_id: str) -> Any:
        """A reading asked of the board now."""
        ...

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Let a relay pass at most wh more Wh before the board opens it (None: no limit)."""
        ...

    def online(self, board_id: str) -> bool:
        """Whether the board can be reached now."""
        ...


def safe_read(boards: Boards, board_id: str, fresh: bool = False) -> Any:
    """A board reading (asked now when fresh, else the latest), or None when unreadable."""
    try:
        return boards.read(board_id) if fresh else boards.reading(board_id)
    except Exception as err:
        log.warning("board %s unreadable: %s", board_id, err)
        return None
