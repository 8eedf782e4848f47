"""The Grid view's kept day: a sample of every board each step of emulated time over the last
emulated day, so a page that opens the view draws what came before it (then extends live)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

DAY_S = 86400.0  # emulated seconds kept
STEP_S = 300.0  # emulated seconds between kept samples: 288 a day, a few KB a board


def _values(board: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(PV W, state of charge %, power W) as the charts draw them: gaps while offline."""
    if not board.get("online"):
        return (None, None, None)
    soc = board.get("soc")
    return (board.get("pv_w"), None if soc is None else soc * 100, board.get("power_w"))


class GridHistory:
    """The last `span_s` emulated seconds of board samples, one every `step_s` at most.

    In the portal process's memory: a restart starts a new day (the community market's own
    store keeps only interval prices, fills and member meters' boundary readings, no PV or
    battery figures)."""

    def __init__(self, step_s: float = STEP_S, span_s: float = DAY_S):
        self.step_s = step_s
        self.span_s = span_s
        self._points: deque[tuple[float, dict[str, tuple[Any, ...]]]] = deque()
        self._boards: dict[str, dict[str, str]] = {}  # board id -> owner and role, as last seen
        self._lock = threading.Lock()

    def due(self, t: float) -> bool:
        """Whether a sample at emulated time t would be kept (a new step began)."""
        with self._lock:
            return not self._points or t >= self._points[-1][0] + self.step_s \
                or t < self._points[-1][0]  # a clock set back starts the day again

    def add(self, t: float, boards: list[dict[str, Any]]) -> bool:
        """Keep a sample taken at emulated time t if a new step began; forget the too old."""
        if not self.due(t):
            return False
        with self._lock:
            if self._points and t < self._points[-1][0]:
                self._points.clear()
            self._points.append((t, {b["board_id"]: _values(b) for b in boards}))
            for b in boards:
                self._boards[b["board_id"]] = {"owner": b["owner"], "role": b["role"]}
            while self._points[0][0] < t - self.span_s:
                self._points.popleft()
        return True

    def series(self) -> dict[str, Any]:
        """The kept samples, one column a figure per board (None: no figure then)."""
        with self._lock:
            points = list(self._points)
            boards = dict(self._boards)
        out: dict[str, Any] = {"step_s": self.step_s, "t": [t for t, _ in points], "boards": {}}
        for board_id, who in boards.items():
            columns = [p.get(board_id, (None, None, None)) for _, p in points]
            out["boards"][board_id] = {**who, "pv_w": [c[0] for c in columns],
                                       "soc": [c[1] for c in columns],
                                       "power_w": [c[2] for c in columns]}
        return out
