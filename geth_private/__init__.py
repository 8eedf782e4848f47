"""Chain layer: backends behind one seam, geth-format keystores, locally signed transactions."""

from geth_private.backend import ChainBackend
from geth_private.errors import (
    ChainError,
    ChainUnavailable,
    KeystoreError,
    TransactionRejected,
    TransactionReverted,
    WrongPassphrase,
)
from geth_private.keystore import Keystore
from geth_private.logs import LogPoller
from geth_private.signer import SignedTx, Signer
from geth_private.transactions import TxManager, TxRecord, TxStatus
from geth_private.uri import backend_from_uri

__all__ = [
    "ChainBackend",
    "ChainError",
    "ChainUnavailable",
    "KeystoreError",
    "Keystore",
    "LogPoller",
    "SignedTx",
    "Signer",
    "TransactionRejected",
    "TransactionReverted",
    "TxManager",
    "TxRecord",
    "TxStatus",
    "WrongPassphrase",
    "backend_from_uri",
]
