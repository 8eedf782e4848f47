"""Locally signed transactions: one nonce sequence per account, receipts, an app-side queue."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from eth_utils import to_checksum_address
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
)

from geth_private.backend import ONE_PENDING_PER_SENDER, ChainBackend
from geth_private.errors import (
    TransactionRejected,
    TransactionReverted,
    TransactionTimeout,
)
from geth_private.records import TxBook, TxRecord, TxStatus
from geth_private.reverts import replay_reason, revert_reason
from geth_private.signed import SignedCall, decode_signed
from geth_private.signer import Signer
from geth_private.watching import check_report, replaced, seen_by_node, unseen, why_drop

__all__ = ["PRIORITY_FEE", "TxManager", "TxRecord", "TxStatus"]

log = logging.getLogger(__name__)

PRIORITY_FEE = 10**9  # 1 gwei tip; private chains do not auction block space


class TxManager:
    """Signs with keys held here, sends raw, tracks receipts; keys never reach the node."""

    def __init__(
        self,
        backend: ChainBackend,
        decode_revert: Callable[[bytes], str | None] | None = None,
        history: int = 500,
        resubmit_after: float = 15.0,
    ):
        self.backend = backend
        self.resubmit_after = resubmit_after  # seconds pending before checking it was dropped
        self.decode_revert = decode_revert or (lambda data: None)
        # Per account: _locks guards its nonce and queue (held while signing, never across
        # an RPC); _sending orders what is handed to the node (held across the RPC).
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._sending: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._nonces: dict[str, int] = {}
        self._queued: dict[str, deque[TxRecord]] = defaultdict(deque)
        self._inflight: dict[str, dict[str, TxRecord]] = defaultdict(dict)
        self._book = TxBook(history)
        self._guard = self._book.lock
        self._listeners: list[Callable[[TxRecord], None]] = []
        self._accounts: dict[str, Signer] = {}
        self._base_fee = 0
        self._fees_at = float("-inf")
        # Signed elsewhere, waiting for the loop to hand them to the node: (record, after).
        self._outbox: deque[tuple[TxRecord, TxRecord | None]] = deque()

    @property
    def w3(self):
        """The backend's Web3 instance."""
        return self.backend.w3

    def subscribe(self, listener: Callable[[TxRecord], None]) -> None:
        """Call listener whenever a record changes status."""
        self._listeners.append(listener)

    def send(self, account: Signer, tx: dict[str, Any], label: str) -> TxRecord:
        """Sign tx with the next nonce and hand it to the node (or queue it); do not wait.

        The account's state lock is held only while signing: the node is asked under the
        account's send lock, so a request queueing from the same account (queue) never waits
        for this send's RPC.
        """
        if "gas" not in tx:
            raise ValueError("give a fixed gas limit: estimation is too slow on hot paths")
        sender = account.address
        fees = self._fees()  # may ask the node: before any lock
        with self._sending[sender]:
            with self._locks[sender]:
                params = {"chainId": self.chain_id(), "value": 0, **tx,
                          "nonce": self._next_nonce(sender), **fees}
                record = self._sign(account, params, label)
                self._remember(record, account)
                # Queued ones (a request's, or the embedded node's one-pending rule) go first.
                hold = bool(self._queued[sender]) or (
                    self.backend.has(ONE_PENDING_PER_SENDER) and self._inflight[sender]
                    and not self.backend.is_mining())
                if hold:
                    record.status = TxStatus.QUEUED
                    record.accept()
                    self._queued[sender].append(record)
            if hold:
                self._notify(record)
            else:
                record = self._submit_or_renonce(account, params, label, record)
        self.poll_one(record)
        return record

    def queue(self, account: Signer, tx: dict[str, Any], label: str) -> TxRecord:
        """Sign tx with the next nonce and queue it for the next poll: its hash is known at
        once and nothing here asks the node (a request's send: it never waits for a node)."""
        if "gas" not in tx:
            raise ValueError("give a fixed gas limit: estimation is too slow on hot paths")
        sender = account.address
        fees = self._fees(cached=True)
        with self._locks[sender]:
            params = {"chainId": self.chain_id(), "value": 0, **tx,
                      "nonce": self._next_nonce(sender), **fees}
            record = self._sign(account, params, label)
            record.status = TxStatus.QUEUED
            record.accept()  # before the poll can reach it: a response answers 'queued'
            self._remember(record, account)
            self._queued[sender].append(record)
        self._notify(record)
        return record

    def _submit_or_renonce(
        self, account: Signer, params: dict[str, Any], label: str, record: TxRecord
    ) -> TxRecord:
        """Hand a signed record to the node (under the account's send lock); on a refusal,
        once more with the node's nonce when another process used this one."""
        sender = account.address
        try:
            self._submit(record)
            return record
        except TransactionRejected:
            with self._locks[sender]:
                again = self._renonce(account, params, label)
            if again is not None:
                try:
                    self._submit(again)
                    return again
                except TransactionRejected:
                    pass
            with self._locks[sender]:
                if self._nonces[sender] == params["nonce"] + 1:
                    self._nonces[sender] -= 1  # a refused signature consumes no nonce
                elif self._queued[sender]:
                    self._resign_after(sender, params["nonce"])  # queued meanwhile: close the gap
            raise

    def submit_signed(
        self, raw: bytes | str | SignedCall, label: str, after: TxRecord | None = None,
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

    def watch(self, tx_hash: str, sender: str, label: str) -> TxRecord:
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

    def suggest(self, sender: str, tx: dict[str, Any]) -> dict[str, Any]:
        """The fields an owner signs: its next nonce (the node's count and what is queued
        here), the chain id and EIP-1559 fees, around the given to/data/value/fixed gas."""
        counted = self.w3.eth.get_transaction_count(sender, "pending")
        mine = [r.nonce for r in self._book.waiting(sender)]
        return {"chainId": self.chain_id(), "value": 0, **tx, "type": 2,
                "nonce": max([counted, *(n + 1 for n in mine)]), **self._fees()}

    def _send_outbox(self) -> None:
        """Hand owner-signed transactions to the node, in order, each when it may go."""
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

    def _in_outbox(self, record: TxRecord) -> bool:
        with self._guard:
            return any(queued is record for queued, _ in self._outbox)

    def _node_answers(self) -> bool:
        """Whether the node answers at all (a refusal then is the node's, about the tx)."""
        try:
            self.w3.eth.get_block_number()
        except Exception:  # connection refused, a stopped backend: every kind means "away"
            return False
        return True

    def _renonce(
        self, account: Signer, params: dict[str, Any], label: str
    ) -> TxRecord | None:
        """After a refusal, the same transaction signed with the node's nonce when the node
        counts otherwise than this process did: another process (a second portal worker, a
        wallet) sent from the account meanwhile, or the node forgot (a rewind). None when
        that is not why."""
        sender = account.address
        if self._queued[sender]:
            return None  # the app-side queue owns the next nonces
        try:
            counted = self.w3.eth.get_transaction_count(sender, "pending")
        except Exception:  # the node is away: the refusal was not about the nonce
            return None
        if counted == params["nonce"]:
            return None
        # More: another process sent from the account meanwhile. Fewer: the node forgot
        # transactions (a chain restarted from an older state): the next nonce is its count.
        log.warning("%s: nonce %s was %s; sending with %s", label, params["nonce"],
                    "used elsewhere" if counted > params["nonce"] else "forgotten by the node",
                    counted)
        record = self._sign(account, {**params, "nonce": counted}, label)
        self._nonces[sender] = counted + 1
        self._remember(record, account)
        return record

    def wait(self, record: TxRecord, timeout: float = 30.0) -> dict[str, Any]:
        """Block until the record is mined; its receipt, or TransactionReverted/Timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll_one(record)
            if record.status == TxStatus.MINED:
                return record.receipt or self._receipt(record.tx_hash)
            if record.status == TxStatus.FAILED:
                raise TransactionReverted(record.label, record.error, record.tx_hash)
            if time.monotonic() > deadline:
                raise TransactionTimeout(
                    f"{record.label}: not mined after {timeout:.0f} s (is mining stopped?)"
                )
            time.sleep(0.02)

    def transact(
        self, account: Signer, tx: dict[str, Any], label: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Send and wait for the receipt."""
        return self.wait(self.send(account, tx, label), timeout)

    def simulate(self, sender: str, tx: dict[str, Any], label: str) -> bytes:
        """Run tx as a call first, so a revert becomes a clear error before anything is sent."""
        try:
            return self.w3.eth.call({"from": sender, **tx})
        except (ContractCustomError, ContractLogicError) as err:
            raise TransactionReverted(label, self._reason(err)) from err

    def poll(self) -> None:
        """Collect receipts of in-flight transactions and release queued ones."""
        for records in list(self._inflight.values()):
            for record in list(records.values()):
                self.poll_one(record)
        for sender in [s for s, q in list(self._queued.items()) if q]:
            self._release(sender)  # queued by a request (queue) with nothing in flight yet
        self._send_outbox()  # after the receipts: a sender whose last one landed may send

    def poll_one(self, record: TxRecord) -> None:
        """Check one record's receipt and move its sender's queue along."""
        if record.status == TxStatus.PENDING and not self._settle_if_mined(record):
            self._resubmit_if_dropped(record)
            return
        if record.status == TxStatus.QUEUED and self._in_outbox(record):
            self._send_outbox()  # signed elsewhere: it waits in the outbox, not the queue
        self._release(record.sender)

    def send_forgotten(self, record: TxRecord) -> bool:
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

    def pending(self, address: str | None = None) -> list[TxRecord]:
        """Transactions not yet mined (queued by the app or pending at the node)."""
        return self._book.waiting(address)

    def record(self, tx_hash: str) -> TxRecord | None:
        """The record of a transaction this process sent, was handed or follows."""
        return self._book.get(tx_hash)

    def recent(self, address: str, limit: int = 20) -> list[TxRecord]:
        """The newest records sent by an address, newest first."""
        return [r for r in reversed(self._book.in_order()) if r.sender == address][:limit]

    def set_mining(self, on: bool) -> None:
        """Start or stop block production, then let queued transactions through."""
        self.backend.set_mining(on)
        if on:
            for sender in list(self._queued):
                self._release(sender)
            self.poll()

    # -- internals -------------------------------------------------------------------------

    def chain_id(self) -> int:
        """The chain's id (asked once)."""
        if not hasattr(self, "_cached_chain_id"):
            self._cached_chain_id = self.w3.eth.chain_id
        return self._cached_chain_id

    def _fees(self, cached: bool = False) -> dict[str, int]:
        # The base fee moves by at most 12.5% a block; twice it, refreshed each second,
        # covers it without asking the node for a block on every send. cached: a request's
        # queue takes the last one seen (the loop's sends keep it fresh), asking only once.
        now = time.monotonic()
        if now - self._fees_at > 1.0 and not (cached and self._fees_at > float("-inf")):
            self._base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas") or 0
            self._fees_at = now
        return {
            "maxFeePerGas": 2 * self._base_fee + PRIORITY_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE,
        }

    def _next_nonce(self, sender: str) -> int:
        if sender not in self._nonces:
            self._nonces[sender] = self.w3.eth.get_transaction_count(sender, "pending")
        nonce = self._nonces[sender]
        self._nonces[sender] = nonce + 1
        return nonce

    def _sign(self, account: Signer, params: dict[str, Any], label: str) -> TxRecord:
        signed = account.sign_transaction(params)
        return TxRecord(
            tx_hash="0x" + signed.hash.hex().removeprefix("0x"),
            sender=account.address,
            nonce=params["nonce"],
            label=label,
            to=params.get("to"),
            value=int(params.get("value", 0)),
            status=TxStatus.PENDING,
            created=time.time(),
            params=params,
            raw=bytes(signed.raw_transaction),
        )

    def _remember(self, record: TxRecord, account: Signer | None = None) -> None:
        self._book.add(record)
        # Queued records may need re-signing when an earlier one is refused.
        if account is not None:
            self._accounts[account.address] = account

    def _submit(self, record: TxRecord) -> None:
        try:
            self.w3.eth.send_raw_transaction(record.raw)
        except Exception as err:  # nodes refuse with many exception types; all mean "not sent"
            record.status = TxStatus.FAILED
            record.error = str(err)
            self._notify(record)
            raise TransactionRejected(f"{record.label}: the node refused it: {err}") from err
        record.status = TxStatus.PENDING
        record.submitted = time.time()
        self._inflight[record.sender][record.tx_hash] = record
        self._notify(record)

    def _release(self, sender: str) -> None:
        """Hand an account's queued records to the node in nonce order, as it may take them;
        the state lock is let go during each RPC, so queueing goes on meanwhile."""
        with self._sending[sender]:
            while True:
                with self._locks[sender]:
                    if not self._queued[sender] or (
                        self._inflight[sender] and not self.backend.is_mining()
                    ):
                        return
                    record = self._queued[sender].popleft()
                try:
                    self._submit(record)
                except TransactionRejected:
                    log.warning("queued %s refused; re-signing the ones after it", record.label)
                    with self._locks[sender]:
                        self._resign_after(sender, record.nonce)
                    continue
                self._settle_if_mined(record)

    def _resubmit_if_dropped(self, record: TxRecord) -> None:
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

    def _fill_gap(self, record: TxRecord) -> None:
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

    def _replay(self, record: TxRecord) -> None:
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

    def _fill_nonce(self, sender: str, nonce: int) -> None:
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

    def _drop(self, record: TxRecord, reason: str | None) -> None:
        """Stop following a pending record that is over (reason), so nothing polls it forever."""
        if reason is None:
            return
        record.status, record.error = TxStatus.FAILED, reason
        self._inflight[record.sender].pop(record.tx_hash, None)
        self._notify(record)

    def _settle_if_mined(self, record: TxRecord) -> bool:
        """Take the receipt if the node has one; whether it had."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(record.tx_hash)
        except TransactionNotFound:
            return False
        if not record.raw and to_checksum_address(receipt["from"]) != record.sender:
            self._drop(record, f"sent by {receipt['from']}, not by {record.sender}")
            return True
        self._settle(record, receipt)
        return True

    def _resign_after(self, sender: str, nonce: int) -> None:
        account = self._accounts[sender]
        queue = self._queued[sender]
        for index, old in enumerate(list(queue)):
            params = {**old.params, "nonce": nonce + index}
            fresh = self._sign(account, params, old.label)
            fresh.status = TxStatus.QUEUED
            self._remember(fresh, account)
            old.status = TxStatus.FAILED
            old.error = "replaced after an earlier transaction was refused"
            queue[index] = fresh
        self._nonces[sender] = nonce + len(queue)

    def _settle(self, record: TxRecord, receipt: dict[str, Any]) -> None:
        if record.status not in (TxStatus.PENDING, TxStatus.QUEUED):
            return
        record.block = receipt["blockNumber"]
        record.gas_used = receipt["gasUsed"]
        record.receipt = receipt
        if receipt["status"] == 1:
            record.status = TxStatus.MINED
        else:
            # The reason first: a thread waiting on this record acts as soon as it sees FAILED.
            record.error = self._replay_reason(record)
            record.status = TxStatus.FAILED
        self._inflight[record.sender].pop(record.tx_hash, None)
        self._notify(record)

    def _replay_reason(self, record: TxRecord) -> str | None:
        return replay_reason(self.w3, record, self.decode_revert)

    def _reason(self, err: Exception) -> str:
        return revert_reason(err, self.decode_revert)

    def _receipt(self, tx_hash: str) -> dict[str, Any]:
        return self.w3.eth.get_transaction_receipt(tx_hash)

    def _notify(self, record: TxRecord) -> None:
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:
                log.exception("transaction listener failed")
