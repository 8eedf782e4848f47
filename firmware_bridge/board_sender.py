"""One remote board's relay and budget commands: queued (the latest per relay wins) and sent by a
thread of the board's own, so a bridge that never answers blocks nobody but that thread.

Should the bridge be dead, nothing is lost that matters: the board's own heartbeat failsafe
opens its relays, and the market pauses the deal of a board whose bridge went away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], object]
"""Sends one command and waits for its answer; raises BridgeError when it failed."""


class BoardSender:
    """Commands for one board, sent one at a time in the order they were last changed.

    A command waiting to be sent is replaced by a newer one for the same key (relay on after
    relay off: only "on" is sent), so the board ends in the state asked last. A command that
    failed is tried again when a newer one comes or after a short backoff, unless a newer
    one replaced it meanwhile.
    """

    def __init__(
        self, board_id: str, send: Send, backoff_s: float = 0.5, max_backoff_s: float = 5.0
    ):
        self.board_id = board_id
        self._send = send
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._pending: dict[Hashable, dict[str, Any]] = {}  # key -> command, oldest change first
        self._busy = False  # a command is with the bridge now
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"sender-{board_id}",
                                        daemon=True)
        self._thread.start()

    def put(self, key: Hashable, command: dict[str, Any]) -> None:
        """Ask for command to be sent; it replaces the one waiting under the same key."""
        with self._changed:
            self._pending.pop(key, None)  # moved to the end: sent after older changes
            self._pending[key] = command
            self._changed.notify_all()

    def idle(self) -> bool:
        """Whether every command asked for has been answered by the bridge."""
        with self._changed:
            return not self._pending and not self._busy

    def close(self) -> None:
        """Stop sending (what waits is dropped; a command with the bridge is left to finish)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _next(self) -> tuple[Hashable, dict[str, Any]] | None:
        """The oldest waiting command (it stays queued until answered), or None when stopped."""
        with self._changed:
            while not self._pending and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return None
            self._busy = True
            return next(iter(self._pending.items()))

    def _run(self) -> None:
        backoff = self._backoff_s
        while (item := self._next()) is not None:
            key, command = item
            try:
                self._send(command)
                failed = None
            except Exception as err:  # BridgeError, or any transport trouble: retried below
                failed = err
            with self._changed:
                self._busy = False
                if failed is None:
                    if self._pending.get(key) is command:  # not replaced while it was sent
                        del self._pending[key]
                    backoff = self._backoff_s
                    continue
                log.warning("board %s: %s not sent (%s); retrying", self.board_id,
                            command.get("action"), failed)
                if self._pending.get(key) is command:
                    # Wait a little, or until a newer command comes (it may replace this one).
                    self._changed.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff_s)
