"""Unlocked keys of logged-in sessions, held in server memory only and wiped at logout."""

from __future__ import annotations

import secrets
import threading

from eth_account.signers.local import LocalAccount


class KeyRing:
    """Maps an opaque session token to the account its login unlocked."""

    def __init__(self) -> None:
        self._keys: dict[str, LocalAccount] = {}
        self._lock = threading.Lock()

    def add(self, account: LocalAccount) -> str:
        """Hold an unlocked account; the token that names it."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._keys[token] = account
        return token

    def get(self, token: str | None) -> LocalAccount | None:
        """The account for a token, if still held."""
        if not token:
            return None
        with self._lock:
            return self._keys.get(token)

    def drop(self, token: str | None) -> None:
        """Forget the key of a token (logout)."""
        with self._lock:
            self._keys.pop(token or "", None)
