"""A small in-process publish/subscribe hub: the market announces, the web layer relays."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]


class Hub:
    """Delivers every published (topic, payload) to every subscriber, in order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        """Receive every later publication."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Hand a publication to each subscriber; one failing never stops the others."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(topic, payload)
            except Exception:
                log.exception("subscriber failed on %s", topic)
