"""Which artifact set a node can run, read from the fields of its block headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts import UnsupportedEvm

# Header fields each fork added, newest first: EIP-7685 (Prague); EIP-4844 and EIP-4788
# (Cancun); EIP-1559 (London). A fork counts only when all its fields are there: anvil's
# genesis block carries blob fields on every hardfork, parentBeaconBlockRoot only from Cancun.
# Opcodes leave no trace in a header, but the forks that brought the ones our sets use (PUSH0
# in Shanghai, MCOPY in Cancun) came with or before these fields.
_FORK_FIELDS = (
    ("prague", ("requestsHash",)),
    ("cancun", ("blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot")),
    ("london", ("baseFeePerGas",)),
)


def evm_version_of(header: Mapping[str, Any]) -> str:
    """The newest artifact set a node runs, from its latest block header (web3 or JSON-RPC)."""
    for evm_version, fields in _FORK_FIELDS:
        if all(header.get(name) is not None for name in fields):
            return evm_version
    raise UnsupportedEvm(
        "the node's blocks have no baseFeePerGas: it runs an EVM older than London, which "
        "no artifact set is built for; start the chain with London or later in its genesis"
    )
