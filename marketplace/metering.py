"""Producer meters' readings minted as energy tokens, in batches rather than per Wh."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from geth_private import Signer, TxRecord
from marketplace.errors import MarketError
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class _MeterState:
    board_id: str
    meter: Signer
    offset_wh: int = 0  # the chain's reading when this board's counter started at zero
    sent_wh: int = 0
    margin_s: int = 0  # seconds taken off the next block's estimated time after a refusal
    pending: TxRecord | None = None


class Minting:
    """Sends a producer meter's cumulative reading to the token once it grew by a batch."""

    def __init__(self, ledger: Ledger, batch_wh: int = 10):
        self.ledger = ledger
        self.batch_wh = batch_wh
        self._meters: dict[str, _MeterState] = {}

    def add_producer(self, board_id: str, meter: Signer) -> None:
        """Mint for the producer measured by this board, signed by its meter key."""
        # A board's counter restarts at zero with the emulator, while a persistent chain
        # remembers the meter's last reading: readings are sent on top of it.
        last, _ = self.ledger.mint_allowance(meter.address)
        self._meters[board_id] = _MeterState(board_id, meter, offset_wh=last, sent_wh=last)

    def step(self, readings: dict[str, float]) -> None:
        """Given the boards' cumulative Wh in, send one mint per meter when a batch is due."""
        for board_id, state in self._meters.items():
            if state.pending is not None:
                if state.pending.status in ("queued", "pending"):
                    continue  # one mint in flight per meter; the next covers what came since
                if state.pending.status == "failed":
                    if "MintAboveCap" in (state.pending.error or ""):
                        # The block came earlier than estimated: ask for less next time.
                        state.margin_s = min(state.margin_s + 1, 10)
                        log.info("mint from %s above its cap; retrying with less", board_id)
                    else:
                        log.warning("mint from %s failed: %s", board_id, state.pending.error)
                    state.sent_wh = self.ledger.mint_allowance(state.meter.address)[0]
                state.pending = None
            if readings.get(board_id) is None:
                continue
            wh = state.offset_wh + int(readings[board_id])
            if wh - state.sent_wh < self.batch_wh:
                continue
            try:
                # The token caps each mint by rated power × time since the last one; what
                # the meter counted beyond that is minted by later readings.
                last, allowed = self.ledger.mint_allowance(state.meter.address, state.margin_s)
                target = min(wh, last + allowed)
                if target - last < self.batch_wh and target < wh:
                    continue
                state.pending = self.ledger.mint_reading(state.meter, target)
                state.sent_wh = target
            except MarketError as err:
                log.warning("cannot mint for %s: %s", board_id, err)

    def flush(self) -> None:
        """From now on mint every whole Wh a meter counted, without waiting for a batch."""
        # For closing the books: the last Wh of the day are minted too, one at a time.
        self.batch_wh = 1
