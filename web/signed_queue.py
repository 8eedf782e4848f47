"""Socket.IO's message queue between workers, every message HMAC-signed (threat 76).

With several workers, python-socketio's RedisManager carries each emit, disconnect, room
change and call acknowledgement as JSON on one Redis channel, and every worker does what the
channel says: anyone who can publish on that Redis could send a `command` to a bridge (switch
a relay), fake a push or disconnect anyone. SignedRedisManager wraps each message it
publishes in an envelope tagged with HMAC-SHA256 under a key only the workers hold
(queue_key: derived from the shared SECRET_KEY, distinct from the board bus's key) over the
channel, the send time and the message; a message whose tag is missing or wrong, sent more
than MAX_AGE_S ago or dated as far ahead, or seen already (a replay), is dropped before
python-socketio reads it, with a rate-limited log line per claimed sender.

Nothing here unpickles: envelopes and bodies are JSON (python-socketio >= 5.14 no longer
pickles, CVE-2025-61765; an older one would still never see an unsigned text).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import socketio

log = logging.getLogger(__name__)

CHANNEL = "flask-socketio"  # Flask-SocketIO's default channel, kept for its tools
MAX_AGE_S = 30.0  # a signed message older (or dated further ahead) than this is refused
LOG_EVERY_S = 60.0  # at most one "dropped" log line per claimed sender this often
_MAX_SENDERS = 1024  # the drop log forgets its senders past this (their names are anyone's)
SCHEMES = ("redis", "rediss", "unix")


class QueueRefused(ValueError):
    """A queue text that is not a signed, fresh message of this channel."""


def queue_key(secret: str | bytes) -> bytes:
    """The Socket.IO queue's HMAC key, derived from the workers' shared secret (not it)."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ValueError("the Socket.IO queue needs a non-empty secret")
    return hmac.new(raw, b"gridbid socketio queue", hashlib.sha256).digest()


def _tag(key: bytes, channel: str, body: str) -> str:
    # The channel is signed too: a message of another channel under the same key is not ours.
    return hmac.new(key, channel.encode() + b"\n" + body.encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, channel: str, message: dict[str, Any], now: float,
         dumps: Callable[..., str] = json.dumps) -> dict[str, str]:
    """The envelope that carries message on channel, signed at time now."""
    body = dumps({"ts": now, "m": message})
    return {"tag": _tag(key, channel, body), "body": body}


def unseal(key: bytes, channel: str, text: bytes | str, now: float,
           loads: Callable[[str], Any] = json.loads) -> tuple[str, dict[str, Any]]:
    """(tag, message) of a signed envelope's text, or QueueRefused saying why not."""
    try:
        envelope = json.loads(text)
        tag, body = envelope["tag"], envelope["body"]
    except (TypeError, ValueError, KeyError) as err:
        raise QueueRefused("it is not a signed envelope") from err
    if not (isinstance(tag, str) and isinstance(body, str)
            and hmac.compare_digest(tag.encode(), _tag(key, channel, body).encode())):
        raise QueueRefused("its tag is missing or wrong")
    try:
        inner = loads(body)
        sent, message = float(inner["ts"]), inner["m"]
    except (TypeError, ValueError, KeyError) as err:
        raise QueueRefused("its signed body is not a message") from err
    if not abs(now - sent) <= MAX_AGE_S:  # also NaN
        raise QueueRefused(f"it was sent {now - sent:.0f} s ago (a replay?)")
    if not isinstance(message, dict):
        raise QueueRefused("its signed body is not a message")
    return tag, message


def claimed_sender(text: bytes | str) -> str:
    """The host a dropped text says it is from: for the log only (anyone can say so)."""
    try:
        envelope = json.loads(text)
        if isinstance(envelope, dict) and isinstance(envelope.get("body"), str):
            envelope = json.loads(envelope["body"]).get("m", {})
    except (TypeError, ValueError, AttributeError):
        return "?"
    host = envelope.get("host_id") if isinstance(envelope, dict) else None
    return "?" if host is None else str(host)[:64]


class SeenTags:
    """The tags of messages taken within the last MAX_AGE_S: one seen again is a replay."""

    def __init__(self) -> None:
        self._tags: set[str] = set()
        self._by_age: list[tuple[float, str]] = []  # (when it stops being fresh, tag)

    def first_time(self, tag: str, now: float) -> bool:
        """Record tag; False if it was taken already while still fresh."""
        while self._by_age and self._by_age[0][0] < now:
            self._tags.discard(heapq.heappop(self._by_age)[1])
        if tag in self._tags:
            return False
        # Kept for two windows: a message dated up to MAX_AGE_S ahead stays fresh that long.
        self._tags.add(tag)
        heapq.heappush(self._by_age, (now + 2 * MAX_AGE_S, tag))
        return True


class DropLog:
    """Logs a dropped message once per claimed sender and LOG_EVERY_S, with how many since."""

    def __init__(self) -> None:
        self._senders: dict[str, tuple[float, int]] = {}  # sender -> (last logged, since)

    def drop(self, sender: str, why: str, now: float) -> bool:
        """Count a dropped message; True when this one was logged."""
        last, count = self._senders.get(sender, (None, 0))
        if last is not None and now - last < LOG_EVERY_S:
            self._senders[sender] = (last, count + 1)
            return False
        if len(self._senders) >= _MAX_SENDERS:
            self._senders.clear()
        self._senders[sender] = (now, 0)
        log.warning("Socket.IO queue: dropped a message from %r: %s (%d more dropped since "
                    "the last line)", sender, why, count)
        return True


class SignedRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager whose messages are signed, and checked on arrival."""

    name = "signed-redis"

    def __init__(self, url: str, *, key: bytes, channel: str = CHANNEL, **options: Any):
        if not key:
            raise ValueError("a signed Socket.IO queue needs a key (queue_key of the secret)")
        super().__init__(url, channel=channel, **options)
        self._key = bytes(key)
        self._seen = SeenTags()
        self._drops = DropLog()

    def _publish(self, data: dict[str, Any]) -> Any:
        # RedisManager's own publish (its retries) sends the envelope as JSON.
        return super()._publish(seal(self._key, self.channel, data, time.time(),
                                     self.json.dumps))

    def _listen(self) -> Iterator[dict[str, Any]]:
        # PubSubManager takes a dict as the decoded message: an unsigned text never reaches
        # its decoder.
        for text in super()._listen():
            message = self.admit(text, time.time())
            if message is not None:
                yield message

    def admit(self, text: bytes | str, now: float) -> dict[str, Any] | None:
        """The message of a text from the channel, or None when it is dropped (and logged)."""
        try:
            tag, message = unseal(self._key, self.channel, text, now, self.json.loads)
        except QueueRefused as err:
            self._drops.drop(claimed_sender(text), str(err), now)
            return None
        if not self._seen.first_time(tag, now):
            self._drops.drop(claimed_sender(text), "it was taken already (a replay)", now)
            return None
        return message


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
