"""Contract events read by polling eth_getLogs over block ranges (node-side filters get lost)."""

from __future__ import annotations

from typing import Any

from web3 import Web3


class LogPoller:
    """Reads logs of some addresses block range by block range, remembering where it stopped."""

    def __init__(
        self, w3: Web3, addresses: list[str], from_block: int = 0, max_range: int = 2000
    ):
        self.w3 = w3
        self.addresses = list(addresses)
        self.cursor = from_block  # next block to read
        self.max_range = max_range

    def poll(self) -> list[dict[str, Any]]:
        """Logs in blocks from the cursor to the chain head, oldest first."""
        head = self.w3.eth.block_number
        found: list[dict[str, Any]] = []
        while self.cursor <= head:
            last = min(head, self.cursor + self.max_range - 1)
            found.extend(
                self.w3.eth.get_logs(
                    {"fromBlock": self.cursor, "toBlock": last, "address": self.addresses}
                )
            )
            self.cursor = last + 1
        return found
