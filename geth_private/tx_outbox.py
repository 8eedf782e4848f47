"""Transactions their owners signed (a browser, a wallet): queued here, sent in order."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from geth_private.backend import ONE_PENDING_PER_SENDER
from geth_private.errors import TransactionRejected
from geth_private.records import TxRecord, TxStatus
from geth_private.signed import SignedCall, decode_signed
from geth_private.watching import check_report, seen_by_node, unseen

if TYPE_CHECKING:
    from geth_private.transactions import TxManager

log = logging.getLogger("geth_private.transactions")  # the manager's log, as before the split


class OwnerSigned:
    """TxManager's part for transactions signed where the key lives, not here: their bytes
    queued in an outbox and handed to the node in order (after another record when asked),
    and ones a wallet sent itself followed. A mixin on the manager's own book and queues."""

    def submit_signed(
        self: TxManager, raw: bytes | str | SignedCall, label: str, after: TxRecord | None = None,
    ) -> TxRecord:
        """A transaction its owner signed (a browser, a wallet): recorded and queued at once.

        The next poll hands it to the node, once `after` (if given) has a receipt; a refusal
        marks it FAILED with the node's words, and the listeners hear of it either way.
        Sending the same bytes twice gives the same record (its as_accepted() the first
        answer again).
        """
        call = raw if isinstance(raw, SignedCall) else decode_signed(raw)
        with self._guard:
            known = self._book.get(call.tx_hash)
            if known is not None and known.status != TxStatus.FAILED and known.raw:
                return known
            if known is not None:  # a wallet's report of these bytes: the bytes now prove it
                self._inflight[known.sender].pop(known.tx_hash, None)
            record = TxRecord(
                tx_hash=call.tx_hash, sender=call.sender, nonce=call.nonce, label=label,
                to=call.to, value=call.value, status=TxStatus.QUEUED, created=time.time(),
                params={"to": call.to, "value": call.value, "data": "0x" + call.data.hex(),
                        "gas": call.gas},
                raw=call.raw,
            )
            record.accept()  # before the loop can send it: a response answers 'queued'
            self._remember(record)
            self._outbox.append((record, after))
        self._notify(record)
        return record

    def watch(self: TxManager, tx_hash: str, sender: str, label: str) -> TxRecord:
        """Follow a transaction a wallet sent through its own RPC (its receipt, its failure):
        only the sender the node names may report it, and few hashes the node has not seen
        (WatchRefused); one never seen is dropped after a while (geth_private.watching)."""
        with self._guard:
            known = self._book.get(tx_hash)
        if known is None:
            seen = seen_by_node(self.w3, tx_hash)
        elif known.sender != sender:
            seen = {"from": known.sender}
        else:
            return known
        with self._guard:
            check_report(seen, sender, sum(map(unseen, self._inflight[sender].values())))
            record = TxRecord(
                tx_hash=tx_hash, sender=sender, nonce=int(seen["nonce"]) if seen else -1,
                label=label, to=seen.get("to") if seen else None,
                value=int(seen.get("value", 0)) if seen else 0, status=TxStatus.PENDING,
                created=time.time(), submitted=time.time())
            self._remember(record)
            self._inflight[sender][tx_hash] = record
        self._notify(record)
        return record

    def suggest(self: TxManager, sender: str, tx: dict[str, Any]) -> dict[str, Any]:
        """The fields an owner signs: its next nonce (the node's count and what is queued
        here), the chain id and EIP-1559 fees, around the given to/data/value/fixed gas."""
        counted = self.w3.eth.get_transaction_count(sender, "pending")
        mine = [r.nonce for r in self._book.waiting(sender)]
        return {"chainId": self.chain_id(), "value": 0, **tx, "type": 2,
                "nonce": max([counted, *(n + 1 for n in mine)]), **self._fees()}

    def _send_outbox(self: TxManager) -> None:
        """Hand owner-signed transactions to the node, in order, each when it may go; one
        poller at a time, so a poll returns only once what it found queued was handed on
        (another thread's poll that took it first is waited for: a block mined by hand
        right after a poll holds it)."""
        with self._outbox_sending:
            self._hand_outbox()

    def _hand_outbox(self: TxManager) -> None:
        with self._guard:
            waiting = list(self._outbox)
            self._outbox.clear()
        if waiting and not self._node_answers():
            # The node is away (a restart): the owners' signed bytes wait for it, not failed,
            # as nobody here can sign them again.
            with self._guard:
                self._outbox.extendleft(reversed(waiting))
            return
        held: list[tuple[TxRecord, TxRecord | None]] = []
        one_at_a_time = self.backend.has(ONE_PENDING_PER_SENDER) and not self.backend.is_mining()
        for record, after in waiting:
            if record.status != TxStatus.QUEUED:
                continue
            blocked = after is not None and after.status in (TxStatus.QUEUED, TxStatus.PENDING)
            if blocked or (one_at_a_time and self._inflight[record.sender]) or any(
                r.sender == record.sender for r, _ in held
            ):
                held.append((record, after))
                continue
            try:
                self._submit(record)
            except TransactionRejected as err:
                log.info("%s", err)
        with self._guard:
            self._outbox.extendleft(reversed(held))

    def _in_outbox(self: TxManager, record: TxRecord) -> bool:
        with self._guard:
            return any(queued is record for queued, _ in self._outbox)

    def _node_answers(self) -> bool:
        """Whether the node answers at all (a refusal then is the node's, about the tx)."""
        try:
            self.w3.eth.get_block_number()
        except Exception:  # connection refused, a stopped backend: every kind means "away"
            return False
        return True

