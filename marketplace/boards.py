"""The market's side of the board seam (firmware_bridge.boards.Boards): reads that never raise."""

from __future__ import annotations

import logging
from typing import Any

from firmware_bridge.boards import Boards

log = logging.getLogger(__name__)

__all__ = ["Boards", "safe_read"]


def safe_read(boards: Boards, board_id: str, fresh: bool = False) -> Any:
    """A board reading (asked now when fresh, else the latest), or None when unreadable."""
    try:
        return boards.read(board_id) if fresh else boards.reading(board_id)
    except Exception as err:
        log.warning("board %s unreadable: %s", board_id, err)
        return None
