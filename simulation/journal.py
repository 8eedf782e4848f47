"""The chain's own records of a day, gathered as it goes: gas fees and both contracts' events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marketplace.ledger import Ledger


class ChainJournal:
    """Participants' gas fees from receipts and the contracts' decoded events, day long.

    Gathered as the day goes: eth-tester's getLogs and receipt look-ups scan the whole chain,
    so reading them all at the end would take minutes.
    """

    def __init__(self, ledger: Ledger, addresses: Iterable[str], from_block: int = 0):
        self.ledger = ledger
        self.fees: dict[str, int] = dict.fromkeys(addresses, 0)
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._counted: set[str] = set()
        self._poller = ledger.log_poller(from_block)

    def on_transaction(self, record: Any) -> None:
        """Add a participant's mined (or reverted) transaction's gas fee, from its receipt."""
        receipt = record.receipt
        if receipt is None or record.sender not in self.fees or record.tx_hash in self._counted:
            return
        self._counted.add(record.tx_hash)
        self.fees[record.sender] += receipt["gasUsed"] * receipt["effectiveGasPrice"]

    def poll(self) -> None:
        """Read both contracts' new logs (eth_getLogs from where the last read stopped)."""
        for raw in self._poller.poll():
            decoded = self.ledger.decode(raw)
            if decoded:
                self.events.setdefault(decoded[0], []).append(decoded[1])

    def of(self, name: str) -> list[dict[str, Any]]:
        """The arguments of every event of that name read so far."""
        return self.events.get(name, [])
