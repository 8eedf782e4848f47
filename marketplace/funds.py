"""A bidder's escrow funds as a bid's check reads them: outside every lock, kept until they may
have changed, so a burst of bids asks the chain (on the embedded chain: the EVM's one lock) once.
"""

from __future__ import annotations

import threading
import time

from geth_private import TxRecord
from geth_private.records import TxStatus
from marketplace.ledger import Ledger

TTL_S = 2.0  # the longest a bidder's funds are kept without a transaction to the escrow


class Funds:
    """(free escrow, pending withdrawal) per bidder, dropped whenever a transaction to the escrow
    lands here and at most TTL_S old otherwise.

    Why stale is safe: the escrow's openDeal checks the winner's free balance itself, and a
    winner it refuses gives way to the next covered bid (opening.py); a withdrawal cannot void
    a leading bid (its notice outlasts any auction's close). A deposit or withdrawal sent
    through another worker (or a wallet's own node) shows here within TTL_S: until then a bid
    may be refused as uncovered, never an uncovered one taken on chain.
    """

    def __init__(self, ledger: Ledger, ttl_s: float = TTL_S):
        self.ledger = ledger
        self.ttl_s = ttl_s
        self._lock = threading.Lock()  # the map only; never held across the chain reads
        self._known: dict[str, tuple[float, int, tuple[int, int]]] = {}
        self._generation = 0  # moves on with every escrow transaction mined here
        ledger.txm.subscribe(self._saw)

    def of(self, bidder: str) -> tuple[int, int]:
        """(free escrow, pending withdrawal amount) of a bidder, in wei."""
        with self._lock:
            known, generation = self._known.get(bidder), self._generation
        if known is not None and known[1] == generation \
                and time.monotonic() - known[0] < self.ttl_s:
            return known[2]
        value = (self.ledger.escrow_free(bidder), self.ledger.withdrawal_of(bidder)["amount"])
        with self._lock:
            if self._generation == generation:  # no escrow transaction landed meanwhile
                self._known[bidder] = (time.monotonic(), generation, value)
        return value

    def _saw(self, record: TxRecord) -> None:
        """A transaction to the escrow was mined: every bidder's funds are read afresh."""
        escrow = self.ledger.escrow
        if record.status == TxStatus.MINED and escrow is not None \
                and str(record.to or "").lower() == escrow.address.lower():
            with self._lock:
                self._generation += 1
                self._known.clear()
