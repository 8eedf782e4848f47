"""Producer meters' signed readings minted as energy tokens: one operator batch per tick at most.

A reading authenticates itself (the meter's EIP-712 signature), so the operator sends them; the
token mints what each counted above its last minted reading, within the meter's cap, and skips
(ReadingRefused) what it will not take. Meters send nothing and need no Ether.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from web3.logs import DISCARD

from firmware_bridge.signing import SignedReading
from geth_private import TxRecord
from geth_private.records import TxStatus
from marketplace.contract_enums import READING_REFUSALS
from marketplace.interval_minting import MINT_WINDOW_S
from marketplace.ledger import Ledger
from marketplace.ledger_meters import MAX_MINT_BATCH

log = logging.getLogger(__name__)


@dataclass
class _Meter:
    board_id: str
    meter: str  # address
    last_wh: int = 0  # the token's lastReadingWh of the meter, as last read
    last_at: int = 0  # … and its lastReadingAt
    rated_w: int = 0
    known: bool = False  # False: read the token's view of it before the next batch


class Minting:
    """Sends the due producers' latest signed readings to the token, one batch in flight."""

    def __init__(self, ledger: Ledger, batch_wh: int = 10):
        self.ledger = ledger
        self.batch_wh = batch_wh
        self._meters: dict[str, _Meter] = {}  # board id -> its producer meter
        self._pending: TxRecord | None = None
        self._batch: list[str] = []  # board ids of the batch in flight

    def add_producer(self, board_id: str, meter: str) -> None:
        """Mint for the producer measured by this board, from readings its meter signs."""
        self._meters[board_id] = _Meter(board_id, meter)

    def step(self, signed: dict[str, SignedReading | None]) -> None:
        """Given the boards' latest signed readings, send one batch of those due (none while
        the last batch waits for its receipt)."""
        if self._pending is not None:
            if self._pending.status in (TxStatus.QUEUED, TxStatus.PENDING):
                return
            self._landed(self._pending)
            self._pending = None
        batch = []
        for board_id, reading in signed.items():
            state = self._meters.get(board_id)
            if state is None or reading is None or reading.meter != state.meter:
                continue
            if not state.known and not self._refresh(state):
                continue
            if self._due(state, reading) and len(batch) < MAX_MINT_BATCH:
                batch.append((board_id, reading))  # the rest go with the next batch
        if not batch:
            return
        try:
            self._pending = self.ledger.mint_readings_async([r for _, r in batch])
            self._batch = [board_id for board_id, _ in batch]
        except Exception as err:  # the chain is away: the next tick tries again
            log.warning("mint batch of %s not sent: %s", [b for b, _ in batch], err)

    def flush(self) -> None:
        """From now on mint every whole Wh a meter counted, without waiting for a batch."""
        # For closing the books: the last Wh of the day are minted too, one at a time.
        self.batch_wh = 1

    def _due(self, state: _Meter, reading: SignedReading) -> bool:
        """Whether the token would mint a batch's worth (or more) from this reading."""
        if reading.timestamp <= state.last_at:
            return False  # the token takes each meter's readings newest last
        window = min(reading.timestamp - state.last_at, MINT_WINDOW_S)
        mintable = state.rated_w * window // 3600
        return min(reading.wh_in - state.last_wh, mintable) >= self.batch_wh

    def _refresh(self, state: _Meter) -> bool:
        """Read the token's view of a meter (its last minted reading); False if unreadable."""
        try:
            entry = self.ledger.meter_of(state.meter)
        except Exception as err:
            log.warning("meter %s of %s unreadable: %s", state.meter, state.board_id, err)
            return False
        state.last_wh, state.last_at = int(entry["last_reading_wh"]), int(entry["last_reading_at"])
        state.rated_w, state.known = int(entry["rated_power_w"]), True
        return True

    def _landed(self, record: TxRecord) -> None:
        """A batch is done: log what the token refused, re-read its meters before the next."""
        if record.status == TxStatus.FAILED:
            log.warning("mint batch of %s failed: %s", self._batch, record.error)
        else:
            self._log_refusals(record)
        for board_id in self._batch:
            if board_id in self._meters:
                self._meters[board_id].known = False
        self._batch = []

    def _log_refusals(self, record: TxRecord) -> None:
        try:
            receipt = self.ledger.w3.eth.get_transaction_receipt(record.tx_hash)
            refused = self.ledger.token.events.ReadingRefused().process_receipt(
                receipt, errors=DISCARD)
        except Exception as err:  # only the log line is lost
            log.info("mint batch %s: refusals unread (%s)", record.tx_hash, err)
            return
        for event in refused:
            args = event["args"]
            why = READING_REFUSALS.get(int(args["reason"]), args["reason"])
            log.warning("the token refused a reading of meter %s at %s: %s", args["meter"],
                        args["readingAt"], why)
