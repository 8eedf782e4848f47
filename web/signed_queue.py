"""Socket.IO's message queue between workers, every message HMAC-signed (threat 76).

With several workers, python-socketio's RedisManager carries each emit, disconnect, room
change and call acknowledgement as JSON on one Redis channel, and every worker does what the
channel says: anyone who can publish on that Redis could send a `command` to a bridge (switch
a relay), fake a push or disconnect anyone. SignedRedisManager seals each message it
publishes (firmware_bridge/sealing.py, as the board bus does: an envelope tagged with
HMAC-SHA256 under a key only the workers hold, queue_key: derived from the shared SECRET_KEY,
distinct from the board bus's key, over the channel, the send time and the message); a message
whose tag is missing or wrong, sent more than MAX_AGE_S ago or dated as far ahead, or taken
already (a replay), is dropped before python-socketio reads it, with a rate-limited log line
per claimed sender.

Nothing here unpickles: envelopes and bodies are JSON (python-socketio >= 5.14 no longer
pickles, CVE-2025-61765; an older one would still never see an unsigned text).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import socketio

from firmware_bridge.sealing import LOG_EVERY_S, MAX_AGE_S, SealedChannel, derive_key, seal

__all__ = ["CHANNEL", "LOG_EVERY_S", "MAX_AGE_S", "SignedRedisManager", "check_queue_url",
           "queue_key", "seal", "signed_manager"]

log = logging.getLogger(__name__)

CHANNEL = "flask-socketio"  # Flask-SocketIO's default channel, kept for its tools
SCHEMES = ("redis", "rediss", "unix")


def queue_key(secret: str | bytes) -> bytes:
    """The Socket.IO queue's HMAC key, derived from the workers' shared secret (not it)."""
    return derive_key(secret, b"gridbid socketio queue", "the Socket.IO queue")


class SignedRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager whose messages are signed, and checked on arrival."""

    name = "signed-redis"

    def __init__(self, url: str, *, key: bytes, channel: str = CHANNEL, **options: Any):
        if not key:
            raise ValueError("a signed Socket.IO queue needs a key (queue_key of the secret)")
        super().__init__(url, channel=channel, **options)
        # Host ids name the sending worker; python-socketio's json (maybe custom) codes bodies.
        self._sealed = SealedChannel(key, self.channel, name="Socket.IO queue", sender="host_id",
                                     logger=log, dumps=self.json.dumps, loads=self.json.loads)

    def _publish(self, data: dict[str, Any]) -> Any:
        # RedisManager's own publish (its retries) sends the envelope as JSON.
        return super()._publish(self._sealed.seal(data, time.time()))

    def _listen(self) -> Iterator[dict[str, Any]]:
        # PubSubManager takes a dict as the decoded message: an unsigned text never reaches
        # its decoder.
        for text in super()._listen():
            message = self.admit(text, time.time())
            if message is not None:
                yield message

    def admit(self, text: bytes | str, now: float) -> dict[str, Any] | None:
        """The message of a text from the channel, or None when it is dropped (and logged)."""
        return self._sealed.admit(text, now)


def check_queue_url(url: str) -> None:
    """Refuse (ValueError) a MESSAGE_QUEUE this portal cannot sign: only Redis's are taken."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url
    if url and scheme not in SCHEMES:
        raise ValueError(f"MESSAGE_QUEUE {scheme}:// is not supported: give a Redis URL "
                         "(redis://:PASSWORD@host:6379/0, rediss://… or unix://…)")


def signed_manager(url: str, secret: str | bytes, **options: Any) -> SignedRedisManager:
    """The client manager for a portal's MESSAGE_QUEUE, signed under queue_key(secret)."""
    check_queue_url(url)
    return SignedRedisManager(url, key=queue_key(secret), **options)
