"""Login throttling: after repeated wrong passphrases an account, or an address, waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class LoginThrottle:
    """Counts failed logins per key (an account, a client address) in a sliding window.

    After `max_failures` failures within `window_s`, the key is refused for `lock_s`, doubling
    with each further lockout up to an hour, so guessing a passphrase costs hours, while a
    person who mistypes a few times waits a minute. A success clears the account's count.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        lock_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lock_s = lock_s
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lockouts: dict[str, int] = {}
        self._lock = threading.Lock()

    def wait_s(self, *keys: str) -> float:
        """Seconds until these keys may try again (0 when they may now)."""
        now = self.clock()
        with self._lock:
            return max([self._locked_until.get(k, now) - now for k in keys] + [0.0])

    def failed(self, *keys: str) -> None:
        """Record a wrong passphrase for each key; lock the keys that reached the limit."""
        now = self.clock()
        with self._lock:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
                recent.append(now)
                if len(recent) >= self.max_failures:
                    count = self._lockouts.get(key, 0)
                    self._locked_until[key] = now + min(self.lock_s * 2**count, 3600.0)
                    self._lockouts[key] = count + 1
                    recent = []
                self._failures[key] = recent

    def succeeded(self, key: str) -> None:
        """A right passphrase: the account's failures are forgiven."""
        with self._lock:
            self._failures.pop(key, None)
            self._lockouts.pop(key, None)
            self._locked_until.pop(key, None)


@dataclass(frozen=True)
class LoginThrottles:
    """The portal's two throttles: per account, and four times as lenient per client address."""

    accounts: LoginThrottle
    clients: LoginThrottle

    @classmethod
    def from_config(cls, config: Mapping[str, Any], clock: Callable[[], float]) -> LoginThrottles:
        """Both throttles as LOGIN_MAX_FAILURES and LOGIN_LOCK_S set them, on the given clock."""
        failures, lock_s = config["LOGIN_MAX_FAILURES"], config["LOGIN_LOCK_S"]
        return cls(LoginThrottle(failures, lock_s=lock_s, clock=clock),
                   LoginThrottle(failures * 4, lock_s=lock_s, clock=clock))
