"""The chain's own records of a day, gathered as it goes: gas fees and the contracts' events."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from eth_utils import function_abi_to_4byte_selector

from marketplace.ledger import Ledger
from simulation.batch_gas import describe_settle

log = logging.getLogger(__name__)

SETUP, WARMUP, DAY = "setup", "warmup", "day"  # phases: one-time setup (deposits included),
# the hours traded before the measured day (its participants' first settlements), the day


class ChainJournal:
    """Participants' gas fees from receipts and the contracts' decoded events, day long.

    Gathered as the day goes: eth-tester's getLogs and receipt look-ups scan the whole chain,
    so reading them all at the end would take minutes.
    """

    def __init__(self, ledger: Ledger, addresses: Iterable[str], from_block: int = 0):
        self.ledger = ledger
        self.fees: dict[str, int] = dict.fromkeys(addresses, 0)
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.phase = SETUP
        # Gas of every transaction (any sender, the operator's too) by phase and by what it
        # called: {phase: {kind: [transactions, gas used]}}.
        self.gas: dict[str, dict[str, list[int]]] = {SETUP: {}, WARMUP: {}, DAY: {}}
        self._kinds = _selectors(ledger)
        self._counted: set[str] = set()
        self._poller = ledger.log_poller(from_block)
        # Every settle batch: what it carried and cost (simulation.batch_gas), with the
        # market clock's time it was mined at (clock set by the day).
        self.batches: list[dict[str, Any]] = []
        self.clock: Any = None
        # The measured day's first interval, after a warm-up: a batch settling only earlier
        # intervals is the warm-up's, whenever it is mined (the day's first boundaries settle
        # the warm-up's end).
        self.measured_from_n: int | None = None

    def on_transaction(self, record: Any) -> None:
        """Count a mined (or reverted) transaction's gas by kind, and a participant's fee."""
        receipt = record.receipt
        if receipt is None or record.tx_hash in self._counted:
            return
        self._counted.add(record.tx_hash)
        kind = self.kind_of(record)
        phase = self.phase
        if kind == "settle":
            batch = self._note_batch(record)
            if batch is not None:
                phase = batch["phase"]
        row = self.gas[phase].setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += receipt["gasUsed"]
        if record.sender in self.fees:
            self.fees[record.sender] += receipt["gasUsed"] * receipt["effectiveGasPrice"]

    def _note_batch(self, record: Any) -> dict[str, Any] | None:
        try:
            batch = describe_settle(self.ledger, record)
        except Exception as err:  # a figure of the report, never a reason to stop the day
            log.warning("settle batch %s not described: %s", record.tx_hash, err)
            return None
        batch["at"] = self.clock.now() if self.clock is not None else None
        batch["phase"] = phase_of(batch, self.phase, self.measured_from_n)
        self.batches.append(batch)
        return batch

    def kind_of(self, record: Any) -> str:
        """The contract function a transaction called ("deploy", "transfer" for plain Ether)."""
        if record.to is None:
            return "deploy"
        data = (record.params or {}).get("data") or "0x"
        data = "0x" + bytes(data).hex() if isinstance(data, bytes | bytearray) else str(data)
        if len(data) < 10:
            return "transfer"
        return self._kinds.get(data[2:10].lower(), data[:10])

    def poll(self) -> None:
        """Read both contracts' new logs (eth_getLogs from where the last read stopped)."""
        for raw in self._poller.poll():
            decoded = self.ledger.decode(raw)
            if decoded:
                self.events.setdefault(decoded[0], []).append(decoded[1])

    def of(self, name: str) -> list[dict[str, Any]]:
        """The arguments of every event of that name read so far."""
        return self.events.get(name, [])


def phase_of(batch: dict[str, Any], now: str, measured_from_n: int | None) -> str:
    """A settle batch's phase: the warm-up's when it settles only intervals before the
    measured day (whenever mined), else the phase it was mined in."""
    ends = [p["to_interval"] for p in batch["positions"]]
    if measured_from_n is not None and ends and max(ends) < measured_from_n:
        return WARMUP
    return now


def _selectors(ledger: Ledger) -> dict[str, str]:
    """Every deployed contract's function selectors (hex, no 0x) by name."""
    contracts = [ledger.token, ledger.escrow]
    intervals = getattr(ledger, "intervals", None)
    contracts.append(getattr(intervals, "contract", None))
    kinds = {}
    for contract in filter(None, contracts):
        for entry in contract.abi:
            if entry.get("type") == "function":
                kinds[function_abi_to_4byte_selector(entry).hex()] = entry["name"]
    return kinds
