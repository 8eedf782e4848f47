"""Per-board energy counters that never go back, kept on disk across board and bridge restarts.

A board's meter counts from zero again when it restarts (an emulator, a re-flashed board); a
signed cumulative reading must never go back, or the token and the escrow refuse every later
one. So what the bridge publishes is the board's raw counter plus an offset: when a raw counter
drops below its last value, the board restarted and the offset grows to the last published value.
The state is written to `<directory>/<board>.json` (atomically, through a unique temp file) before
a reading leaves, so a restarted bridge continues from it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from geth_private.files import write_atomic

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class _Counter:
    """One board's counters: offsets added to its raw values, and the last raw/published ones."""

    offset_in: float = 0.0
    offset_out: float = 0.0
    raw_in: float = 0.0
    raw_out: float = 0.0
    wh_in: float = 0.0
    wh_out: float = 0.0


class Odometer:
    """Continues every board's Wh in and out across counter restarts (persisted when given a
    directory; in memory only otherwise)."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()

    def apply(self, board_id: str, wh_in: float, wh_out: float) -> tuple[float, float]:
        """The published (wh_in, wh_out) for a board's raw counters: never below earlier ones."""
        with self._lock:
            counter = self._counters.get(board_id)
            if counter is None:
                counter = self._counters[board_id] = self._load(board_id)
            before = asdict(counter)
            if wh_in < counter.raw_in:  # the board counts from zero again: continue from here
                counter.offset_in = counter.wh_in
            if wh_out < counter.raw_out:
                counter.offset_out = counter.wh_out
            counter.raw_in, counter.raw_out = wh_in, wh_out
            # max(): a float offset plus a raw value never lands a hair under the last one.
            counter.wh_in = max(counter.wh_in, counter.offset_in + wh_in)
            counter.wh_out = max(counter.wh_out, counter.offset_out + wh_out)
            if asdict(counter) != before:
                self._save(board_id, counter)
            return counter.wh_in, counter.wh_out

    def last(self, board_id: str) -> tuple[float, float] | None:
        """The last published (wh_in, wh_out) of a board, or None before its first reading."""
        with self._lock:
            counter = self._counters.get(board_id)
            return None if counter is None else (counter.wh_in, counter.wh_out)

    def _path(self, board_id: str) -> Path | None:
        if self.directory is None:
            return None
        # A board id comes from the board itself: one that is no plain file name is hashed.
        name = board_id if _SAFE_NAME.match(board_id) else \
            "board-" + hashlib.sha256(board_id.encode()).hexdigest()[:32]
        return self.directory / f"{name}.json"

    def _load(self, board_id: str) -> _Counter:
        path = self._path(board_id)
        if path is None or not path.exists():
            return _Counter()
        try:
            data = json.loads(path.read_text())
            return _Counter(**{k: float(data[k]) for k in asdict(_Counter())})
        except (OSError, ValueError, KeyError, TypeError) as err:
            # Refusing to start would stop the board; starting from zero would let its
            # readings go back. Neither is silent: the operator sees this and restores the file.
            raise OSError(f"the odometer of board {board_id} ({path}) is unreadable: {err}") \
                from err

    def _save(self, board_id: str, counter: _Counter) -> None:
        path = self._path(board_id)
        if path is None:
            return
        # No fsync: what this guards against is a bridge restart, not a power cut of its
        # machine (a real meter keeps its own counters through that).
        write_atomic(path, json.dumps(asdict(counter)), fsync=False)
