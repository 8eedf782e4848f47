"""A board's reading as pages show it: any value that is not a finite number is unknown (None).

Readings from bridges are checked where they arrive; this is the display's own defence, so one
bad value never turns a health page, a wallet or everyone's live charts into an error.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

log = logging.getLogger(__name__)

_reported: set[tuple[str, str]] = set()  # (board, field) already logged as bad, until good again
_reported_lock = threading.Lock()


def number(
    value: object, digits: int | None, board_id: str = "", field: str = ""
) -> float | None:
    """value (rounded to digits, if given) when it is a finite real number, else None (logged
    once)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        _note(board_id, field, bad=None)
        return value if digits is None else round(value, digits)
    if value is not None:
        _note(board_id, field, bad=value)
    return None


def flags(values: object, board_id: str = "", field: str = "relays") -> list[bool | None]:
    """Relay states as booleans; an unreadable state is None, an unreadable list empty."""
    if not isinstance(values, list | tuple):
        if values is not None:
            _note(board_id, field, bad=values)
        return []
    shown: list[bool | None] = []
    for index, value in enumerate(values):
        good = isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
        if not good:
            _note(board_id, f"{field}[{index}]", bad=value)
        shown.append(bool(value) if good else None)
    return shown


def numbers(
    values: object, digits: int | None, board_id: str = "", field: str = "budgets"
) -> list[float | None]:
    """A list of numbers (e.g. relay budgets), each shown by number(); not a list: empty."""
    if not isinstance(values, list | tuple):
        if values is not None:
            _note(board_id, field, bad=values)
        return []
    return [number(value, digits, board_id, f"{field}[{i}]") for i, value in enumerate(values)]


def board(reading: Any, board_id: str) -> dict[str, Any]:
    """The fields the health page and the live charts show of a board's last reading."""
    if reading is None:
        return {"relays": [], "budgets": [], "power_w": None, "pv_w": None, "soc": None}
    return {
        "relays": flags(getattr(reading, "relays", None), board_id),
        "budgets": numbers(getattr(reading, "budgets", None), None, board_id),
        "power_w": number(getattr(reading, "power_w", None), 1, board_id, "power_w"),
        "pv_w": number(getattr(reading, "pv_w", None), 1, board_id, "pv_w"),
        "soc": number(getattr(reading, "soc", None), 4, board_id, "soc"),
    }


def _note(board_id: str, field: str, bad: object) -> None:
    """Log a bad value once per board and field (a push every second would flood the log)."""
    key = (board_id, field)
    with _reported_lock:
        if bad is None:
            _reported.discard(key)
            return
        if key in _reported:
            return
        _reported.add(key)
    log.warning("board %s sent %s = %.40r, which is not a finite number: shown as unknown",
                board_id or "?", field or "a value", bad)
