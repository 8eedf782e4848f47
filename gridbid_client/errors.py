"""The client's one error: what the portal (or the client's own checks) refused, and why."""

from __future__ import annotations


class ClientError(Exception):
    """A refused call: HTTP status (0 when nothing reached the portal), sentence, error kind."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "client"
        return f"{self.message} ({where}{', ' + self.kind if self.kind else ''})"


class SigningRefused(ClientError):
    """The client would not sign what the portal handed it (wrong domain, account or terms)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, "SigningRefused")
