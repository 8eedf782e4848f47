"""Transactions the node forgot or dropped: sent again with their own bytes, gaps filled."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from web3.exceptions import TransactionNotFound

from geth_private.errors import TransactionRejected
from geth_private.records import TxRecord, TxStatus
from geth_private.watching import replaced, seen_by_node, why_drop

if TYPE_CHECKING:
    from geth_private.transactions import TxManager

log = logging.getLogger("geth_private.transactions")  # the manager's log, as before the split


class Recovery:
    """TxManager's part that heals what a node lost: a pending transaction it dropped, mined
    ones it forgot when a chain restarted from an older state, and the nonce gaps they
    leave. A mixin: it works on the manager's own book, queues and signing."""

    def send_forgotten(self: TxManager, record: TxRecord) -> bool:
        """Send a mined record again when the node no longer has its receipt (the chain went
        back); whether it is pending again."""
        if record.status != TxStatus.MINED or not record.raw:
            return False
        try:
            self.w3.eth.get_transaction_receipt(record.tx_hash)
            return False
        except TransactionNotFound:
            self._replay(record)
        except Exception:  # the node is away: nothing is known, nothing sent
            return False
        return record.status == TxStatus.PENDING

    def _resubmit_if_dropped(self: TxManager, record: TxRecord) -> None:
        """Send a pending transaction's signed bytes again when the node no longer has it."""
        if time.time() - record.submitted < self.resubmit_after:
            return
        record.submitted = time.time()
        if not record.raw:  # a wallet sent it: only the wallet can send it again
            self._drop(record, why_drop(self.w3, record))
            return
        if seen_by_node(self.w3, record.tx_hash) is not None:
            self._fill_gap(record)  # still in the pool: mined once an earlier nonce is
            return
        try:
            self.w3.eth.send_raw_transaction(record.raw)
            log.warning("%s was dropped by the node; sent it again", record.label)
        except Exception as err:  # e.g. "nonce too low": it was mined or replaced meanwhile
            log.warning("%s was dropped and could not be sent again: %s", record.label, err)
            self._drop(record, replaced(self.w3, record))

    def _fill_gap(self: TxManager, record: TxRecord) -> None:
        """A pending record the node holds but does not mine, because an earlier nonce of
        its sender is missing: the node forgot mined transactions (a chain restarted from an
        older state). Their signed bytes go back to the node, as a reorg's go back to the
        pool; a missing nonce this process never signed (another worker's) is filled."""
        try:
            counted = self.w3.eth.get_transaction_count(record.sender, "latest")
            # Through the pool's run of nonces from there: another worker's pending one
            # counts, and is never replaced by a filler.
            pooled = self.w3.eth.get_transaction_count(record.sender, "pending")
        except Exception:  # the node is away: the next poll looks again
            return
        if counted >= record.nonce:
            return
        mine = {r.nonce: r for r in self._book.in_order() if r.sender == record.sender
                and r.raw and (r.status == TxStatus.PENDING or r.block is not None)}
        for nonce in range(counted, record.nonce):
            old = mine.get(nonce)
            if old is not None and old is not record and old.status == TxStatus.PENDING \
                    and seen_by_node(self.w3, old.tx_hash) is not None:
                continue  # in the pool already
            if old is None:
                if nonce >= pooled:
                    self._fill_nonce(record.sender, nonce)
            else:
                self._replay(old)  # mined and forgotten, or dropped from the pool

    def _replay(self: TxManager, record: TxRecord) -> None:
        """Send a transaction the node forgot after mining it again (same bytes, same hash)."""
        try:
            self.w3.eth.send_raw_transaction(record.raw)
        except Exception as err:  # refused: the rest of the gap is re-signed next time
            log.warning("%s (nonce %s) forgotten by the node and not sent again: %s",
                        record.label, record.nonce, err)
            return
        log.warning("%s (nonce %s) forgotten by the node (it went back); sent again",
                    record.label, record.nonce)
        record.status, record.block, record.receipt = TxStatus.PENDING, None, None
        record.submitted = time.time()
        self._inflight[record.sender][record.tx_hash] = record
        self._notify(record)

    def _fill_nonce(self: TxManager, sender: str, nonce: int) -> None:
        """Fill a nonce the node forgot and this process never signed with a transfer of
        nothing to the sender itself, so the waiting transactions after it are mined as
        signed (signing one of them again would let its first bytes be mined too)."""
        account = self._accounts.get(sender)
        if account is None:
            return
        params = {"chainId": self.chain_id(), "to": sender, "value": 0, "gas": 21000,
                  "nonce": nonce, **self._fees()}
        filler = self._sign(account, params, f"nonce {nonce} filler")
        self._remember(filler, account)
        try:
            self._submit(filler)
        except TransactionRejected as err:  # the next poll looks at the gap again
            log.warning("%s", err)
            return
        log.warning("nonce %s of %s forgotten by the node and not signed here: filled",
                    nonce, sender)

