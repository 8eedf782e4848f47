"""Signed messages between the portal's workers over Redis: tagged, dated and taken once.

Both Redis channels the workers share (the board bus, firmware_bridge/board_bus.py, and
Socket.IO's queue, web/signed_queue.py) carry every message in one envelope, JSON
{"tag": HMAC-SHA256 hex, "body": JSON {"ts": send time, "m": message}}, the tag taken under a
key only the workers hold (derived from their shared secret with a purpose of its own per
channel) over the channel's name and the body. A worker takes a text only when its tag is
right, it was sent at most MAX_AGE_S ago (or dated at most that far ahead) and its tag was not
taken already (a replay within the window); what it drops is logged once per claimed sender
and LOG_EVERY_S (docs/SECURITY.md, threats 73-76).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

MAX_AGE_S = 30.0  # a signed message older (or dated further ahead) than this is refused
LOG_EVERY_S = 60.0  # at most one "dropped" log line per claimed sender this often
_MAX_SENDERS = 1024  # the drop log forgets its senders past this (their names are anyone's)

Dumps = Callable[[Any], str]
Loads = Callable[[str], Any]


class Refused(ValueError):
    """A text that is not a signed, fresh message of this channel."""


class Unsealed(NamedTuple):
    """What a signed text says: its tag, when it was sent and the message."""

    tag: str
    sent: float
    message: dict[str, Any]


def derive_key(secret: str | bytes, purpose: bytes, what: str) -> bytes:
    """One channel's HMAC key: the shared secret's HMAC of purpose (not the secret itself)."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ValueError(f"{what} needs a non-empty secret")
    return hmac.new(raw, purpose, hashlib.sha256).digest()


def _tag(key: bytes, channel: str, body: str) -> str:
    # The channel is signed too: a message of another channel under the same key is not ours.
    return hmac.new(key, channel.encode() + b"\n" + body.encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, channel: str, message: dict[str, Any], now: float,
         dumps: Dumps = json.dumps) -> dict[str, str]:
    """The envelope that carries message on channel, signed at time now."""
    body = dumps({"ts": now, "m": message})
    return {"tag": _tag(key, channel, body), "body": body}


def unseal(key: bytes, channel: str, text: bytes | str, now: float,
           loads: Loads = json.loads) -> Unsealed:
    """What a signed envelope's text says, or Refused saying why not (replays aside)."""
    try:
        envelope = json.loads(text)
        tag, body = envelope["tag"], envelope["body"]
    except (TypeError, ValueError, KeyError) as err:
        raise Refused("it is not a signed envelope") from err
    if not (isinstance(tag, str) and isinstance(body, str)
            and hmac.compare_digest(tag.encode(), _tag(key, channel, body).encode())):
        raise Refused("its tag is missing or wrong")
    try:
        inner = loads(body)
        sent, message = float(inner["ts"]), inner["m"]
    except (TypeError, ValueError, KeyError) as err:
        raise Refused("its signed body is not a message") from err
    if not abs(now - sent) <= MAX_AGE_S:  # also NaN
        raise Refused(f"it was sent {now - sent:.0f} s ago (a replay?)")
    if not isinstance(message, dict):
        raise Refused("its signed body is not a message")
    return Unsealed(tag, sent, message)


def claimed_sender(text: bytes | str, field: str) -> str:
    """The sender (message[field]) a dropped text, an envelope or bare JSON, says it is from:
    for the log only (anyone can say so)."""
    try:
        message = json.loads(text)
        if isinstance(message, dict) and isinstance(message.get("body"), str):
            message = json.loads(message["body"]).get("m", {})
    except (TypeError, ValueError, AttributeError):
        return "?"
    sender = message.get(field) if isinstance(message, dict) else None
    return "?" if sender is None else str(sender)[:64]


class SeenTags:
    """The tags of the messages taken that are still fresh: one taken again is a replay."""

    def __init__(self) -> None:
        self._tags: set[str] = set()
        self._by_age: list[tuple[float, str]] = []  # (when its message stops being fresh, tag)

    def first_time(self, tag: str, sent: float, now: float) -> bool:
        """Record the tag of a message sent at sent; False if it was taken already."""
        while self._by_age and self._by_age[0][0] < now:
            self._tags.discard(heapq.heappop(self._by_age)[1])
        if tag in self._tags:
            return False
        # Kept while unseal would take the message (sent + MAX_AGE_S), then refused as stale.
        self._tags.add(tag)
        heapq.heappush(self._by_age, (sent + MAX_AGE_S, tag))
        return True

    def __len__(self) -> int:
        return len(self._tags)


class DropLog:
    """Logs a dropped message once per claimed sender and LOG_EVERY_S, with how many since."""

    def __init__(self, name: str, logger: logging.Logger = log) -> None:
        self.name, self._log = name, logger
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
        self._log.warning("%s: dropped a message from %r: %s (%d more dropped since the last "
                          "line)", self.name, sender, why, count)
        return True


class SealedChannel:
    """One worker's end of a signed channel: seals what it sends, admits what it may take."""

    def __init__(self, key: bytes, channel: str, *, name: str, sender: str,
                 logger: logging.Logger = log, dumps: Dumps = json.dumps,
                 loads: Loads = json.loads) -> None:
        if not key:
            raise ValueError(f"a signed {name} needs a key")
        self.key, self.channel, self.sender = bytes(key), channel, sender
        self.dumps, self.loads = dumps, loads
        self.seen = SeenTags()
        self.drops = DropLog(name, logger)

    def seal(self, message: dict[str, Any], now: float) -> dict[str, str]:
        """The envelope of message, signed at time now."""
        return seal(self.key, self.channel, message, now, self.dumps)

    def admit(self, text: bytes | str, now: float) -> dict[str, Any] | None:
        """The message of a text from the channel, or None when it is dropped (and logged)."""
        try:
            tag, sent, message = unseal(self.key, self.channel, text, now, self.loads)
        except Refused as err:
            self.drops.drop(claimed_sender(text, self.sender), str(err), now)
            return None
        if not self.seen.first_time(tag, sent, now):
            self.drops.drop(claimed_sender(text, self.sender),
                            "it was taken already (a replay)", now)
            return None
        return message
