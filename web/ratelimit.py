"""Per-client rate limits: a token bucket per key (a client address), refilled at a steady rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_KEYS = 10_000  # buckets kept before the full ones are forgotten (a full bucket is a new one)


class TokenBuckets:
    """`rate_per_s` calls a second per key, with bursts up to `burst` (default: one second's)."""

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0:
            raise ValueError("a rate limit is a positive number of calls a second")
        self.rate = float(rate_per_s)
        self.burst = float(burst if burst is not None else max(rate_per_s, 1.0))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, key: str, n: int = 1) -> float:
        """Spend n tokens of key's bucket: 0.0 when allowed, else seconds until they would be."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if n > tokens:
                self._buckets[key] = (tokens, now)
                # More than a burst never fits: the wait says how long a full bucket takes.
                return (min(n, self.burst) - tokens) / self.rate or 1.0 / self.rate
            self._buckets[key] = (tokens - n, now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        buckets = self._buckets
        full = [k for k, (t, at) in buckets.items() if t + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
