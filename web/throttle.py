"""Rate limits per client address: a token bucket each, so no account is ever locked out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from web.errors import RateLimited


class ClientLimiter:
    """`rate_per_s` attempts a second per client, bursts up to `burst`; take() or RateLimited.

    Keyed by the client's address only: a sign-in checks a signature (microseconds, no
    scrypt on the server), so guessing costs the guesser, and a person with a valid
    signature is never refused because someone else tried their account.
    """

    def __init__(self, rate_per_s: float, burst: float,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Spend one attempt of a client, or raise RateLimited with the wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                raise RateLimited(int((1 - tokens) / self.rate_per_s) + 1)
            if len(self._buckets) >= self.max_clients and client not in self._buckets:
                self._forget_full(now)
            self._buckets[client] = (tokens - 1, now)

    def _forget_full(self, now: float) -> None:
        """Drop clients whose buckets have refilled (they are as if never seen)."""
        full = [c for c, (t, at) in self._buckets.items()
                if t + (now - at) * self.rate_per_s >= self.burst]
        for client in full:
            del self._buckets[client]
