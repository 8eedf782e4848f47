"""What signs a transaction: a key unlocked here (eth-account) or a meter key held elsewhere."""

from __future__ import annotations

from typing import Any, Protocol


class SignedTx(Protocol):
    """A signed transaction, ready to send: its hash and its raw bytes."""

    @property
    def hash(self) -> bytes:
        """The transaction hash."""
        ...

    @property
    def raw_transaction(self) -> bytes:
        """The signed transaction as sent to a node."""
        ...


class Signer(Protocol):
    """An account that signs transactions (eth-account's LocalAccount is one as it is)."""

    @property
    def address(self) -> str:
        """The account's checksummed address."""
        ...

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTx:
        """Sign a transaction dict (nonce, gas and fees filled in)."""
        ...
