"""Errors of the chain layer: one base, mixed with builtins where a caller may expect them."""


class ChainError(Exception):
    """Base error of everything in geth_private."""


class ChainUnavailable(ChainError, ConnectionError):
    """The node cannot be reached or is not running."""


class CapabilityMissing(ChainError, NotImplementedError):
    """The backend cannot do what was asked (e.g. toggle mining on a remote node)."""


class TransactionRejected(ChainError, ValueError):
    """The node refused a signed transaction before mining it (funds, nonce, gas)."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; `reason` holds the decoded custom error when known."""

    def __init__(self, label: str, reason: str | None, tx_hash: str | None = None):
        self.label = label
        self.reason = reason
        self.tx_hash = tx_hash
        super().__init__(f"{label} reverted: {reason or 'no reason given'}")


class TransactionTimeout(ChainError, TimeoutError):
    """No receipt arrived in time (for example because mining is stopped)."""


class KeystoreError(ChainError):
    """A keystore file is missing, unreadable or malformed."""


class WrongPassphrase(KeystoreError, ValueError):
    """The passphrase does not decrypt the keystore file."""


class QuorumRefused(ChainError):
    """Stopping this sealer would leave too few signers sealing for clique to go on."""
