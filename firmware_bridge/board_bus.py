"""What bridges told one portal worker, told to every worker: claims, readings, goodbyes.

A bridge holds one Socket.IO connection, to one worker; the worker that settles may be
another. Each worker publishes what its bridges say on the bus and applies what the bus
delivers (its own messages too), so every worker's RemoteBoards knows every board by the same
code path. LocalBus is the bus of one process (no queue: handlers run at once, in the
caller's thread); RedisBus carries the messages over Redis pub/sub (the portal's
MESSAGE_QUEUE), each as one JSON text, in the order one worker published them.

Anyone who can publish on that Redis could speak for a worker, so each RedisBus message is
sealed (firmware_bridge/sealing.py, as Socket.IO's queue is: an envelope with an HMAC-SHA256
tag, under a key only the workers hold, bus_key: derived from the portal's SECRET_KEY, shared
through the data directory, over the channel, the time it was sent and the message); a text
whose tag is missing or wrong, sent more than MAX_AGE_S ago or dated as far ahead, or taken
already (a recorded message replayed within the window) is dropped with a rate-limited log
line per claimed sender (docs/SECURITY.md, threats 73-74).

Nothing on the bus is durable: what matters is sent again (claims every ALIVE_S, readings
several times a second), so a message lost while Redis restarts is replaced by the next.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from firmware_bridge.sealing import MAX_AGE_S, SealedChannel, derive_key

__all__ = ["CHANNEL", "MAX_AGE_S", "BoardBus", "LocalBus", "RedisBus", "bus_for", "bus_key"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
CHANNEL = "gridbid-boards"
RETRY_S = 1.0  # how long the Redis listener waits before subscribing again after a failure
_compact = functools.partial(json.dumps, separators=(",", ":"))


def bus_key(secret: str | bytes) -> bytes:
    """The board bus's HMAC key, derived from a secret the workers share (not that secret)."""
    return derive_key(secret, b"gridbid board bus", "the board bus")


class BoardBus(ABC):
    """Publishes a message to every worker's handlers, this worker's included."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        """Call handler(message) for every message published from now on."""
        self._handlers.append(handler)

    @abstractmethod
    def publish(self, message: dict[str, Any]) -> None:
        """Send message (JSON-able) to every worker; never raises (a failure is logged)."""

    @abstractmethod
    def close(self) -> None:
        """Stop delivering messages."""

    def _deliver(self, message: dict[str, Any]) -> None:
        for handler in list(self._handlers):
            try:
                handler(message)
            except Exception:  # one bad message must not stop the others' delivery
                log.exception("board bus handler failed on %s", message.get("t"))


class LocalBus(BoardBus):
    """The bus of a single process: a message reaches the handlers before publish returns."""

    def publish(self, message: dict[str, Any]) -> None:
        """Hand message to every handler now."""
        self._deliver(message)

    def close(self) -> None:
        """Nothing to release: handlers run in the publisher's thread."""


class RedisBus(BoardBus):
    """Messages over Redis pub/sub between the workers sharing one Redis."""

    def __init__(self, url: str, *, key: bytes, channel: str = CHANNEL):
        super().__init__()
        import redis  # only a portal with a message queue needs it

        if not key:
            raise ValueError("a Redis board bus needs a key (bus_key of the shared secret)")
        self.url = url
        self.channel = channel
        # Messages name their worker in "w"; the drop log's lines are this module's.
        self._sealed = SealedChannel(key, channel, name="board bus", sender="w", logger=log,
                                     dumps=_compact)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._errors = (redis.RedisError, OSError)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="board-bus", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        """Whether the listener is subscribed (messages published before that are not seen)."""
        return self._subscribed.wait(timeout)

    def publish(self, message: dict[str, Any]) -> None:
        """Publish one sealed JSON message; while Redis is away it is dropped (and logged)."""
        text = _compact(self._sealed.seal(message, time.time()))
        try:
            self._redis.publish(self.channel, text)
        except self._errors as err:
            log.warning("board bus: %s not published (%s)", message.get("t"), err)

    def close(self) -> None:
        """Stop listening (the listener notices within a second)."""
        self._stop.set()
        self._thread.join(timeout=3)
        self._redis.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self._subscribed.set()
                while not self._stop.is_set():
                    item = pubsub.get_message(timeout=1.0)
                    if item is not None and item.get("type") == "message":
                        self._receive(item["data"])
            except self._errors as err:
                self._subscribed.clear()
                log.warning("board bus: Redis at %s unreachable (%s); subscribing again",
                            self.url, err)
                self._stop.wait(RETRY_S)
            finally:
                try:
                    pubsub.close()
                except self._errors:
                    pass

    def _receive(self, data: bytes | str) -> None:
        message = self._sealed.admit(data, time.time())
        if message is not None:
            self._deliver(message)


def bus_for(url: str | None, key: bytes | None = None) -> BoardBus:
    """The bus for a portal's message queue: Redis for redis:// (rediss://), else in-process.

    A Redis bus signs and checks its messages under key (bus_key of the shared secret).
    """
    if url and url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        if not key:
            raise ValueError("a board bus over Redis needs a key")
        return RedisBus(url, key=key)
    return LocalBus()
