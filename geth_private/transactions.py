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
    Web3RPCError,
)

from geth_private.backend import ONE_PENDING_PER_SENDER, ChainBackend
from geth_private.errors import (
    TransactionRejected,
    TransactionReverted,
    TransactionTimeout,
)
from geth_private.records import TxBook, TxRecord, TxStatus
from geth_private.reverts import replay_reason, revert_reason
from geth_private.signer import Signer
from geth_private.tx_outbox import OwnerSigned
from geth_private.tx_recovery import Recovery
from geth_private.watching import known_to_node

__all__ = ["PRIORITY_FEE", "TxManager", "TxRecord", "TxStatus"]

log = logging.getLogger(__name__)

PRIORITY_FEE = 10**9  # 1 gwei tip; private chains do not auction block space
RENONCE_TRIES = 3  # signings with the node's nonce after a refusal (another process sends too)


class TxManager(OwnerSigned, Recovery):
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
        self._outbox_sending = threading.RLock()  # one poller hands the outbox on at a time

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
        _fixed_gas(tx)
        sender = account.address
        fees = self._fees()  # may ask the node: before any lock
        with self._sending[sender]:
            with self._locks[sender]:
                params, record = self._sign_next(account, tx, fees, label)
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
        _fixed_gas(tx)
        sender = account.address
        fees = self._fees(cached=True)
        with self._locks[sender]:
            _, record = self._sign_next(account, tx, fees, label, queued=True)
            self._queued[sender].append(record)
        self._notify(record)
        return record

    def _submit_or_renonce(
        self, account: Signer, params: dict[str, Any], label: str, record: TxRecord
    ) -> TxRecord:
        """Hand a signed record to the node (under the account's send lock); on a refusal,
        again with the node's nonce when another process used this one, RENONCE_TRIES times
        at most (two workers enrolling meters at start took it from each other twice)."""
        sender, tried = account.address, params
        for attempt in range(RENONCE_TRIES + 1):
            try:
                self._submit(record)
                return record
            except TransactionRejected as err:
                refused = err
            if attempt == RENONCE_TRIES:
                break
            with self._locks[sender]:
                again = self._renonce(account, tried, label)
            if again is None:
                break
            record, tried = again, again.params
        with self._locks[sender]:
            if self._nonces[sender] == tried["nonce"] + 1:
                self._nonces[sender] -= 1  # a refused signature consumes no nonce
            elif self._queued[sender]:
                self._resign_after(sender, tried["nonce"])  # queued meanwhile: close the gap
        raise refused

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
        except Web3RPCError as err:
            # The node turned the call down before running it (the sender's funds, say).
            message = err.rpc_response.get("error", {}).get("message") if isinstance(
                getattr(err, "rpc_response", None), dict) else None
            raise TransactionRejected(f"{label}: {message or err}") from err

    def max_fee_per_gas(self) -> int:
        """The fee cap per gas the next suggested transaction carries (last base fee seen)."""
        return self._fees(cached=True)["maxFeePerGas"]

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

    def _sign_next(self, account: Signer, tx: dict[str, Any], fees: dict[str, int],
                   label: str, queued: bool = False) -> tuple[dict[str, Any], TxRecord]:
        """(params, record) of tx signed with the account's next nonce, remembered (the
        caller holds the account's state lock); queued: accepted as queued first."""
        params = {"chainId": self.chain_id(), "value": 0, **tx,
                  "nonce": self._next_nonce(account.address), **fees}
        record = self._sign(account, params, label)
        if queued:
            record.status = TxStatus.QUEUED
            record.accept()  # before the poll can reach it: a response answers 'queued'
        self._remember(record, account)
        return params, record

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
        """Hand a record's bytes to the node and follow them. A refusal of bytes the node has
        (another worker signed the very same: key, nonce, fees, call) is no refusal: re-signed
        under the next nonce, the one transfer was mined twice."""
        try:
            self.w3.eth.send_raw_transaction(record.raw)
        except Exception as err:  # nodes refuse with many exception types; all mean "not sent"
            if not known_to_node(self.w3, record.tx_hash):
                record.status = TxStatus.FAILED
                record.error = str(err)
                self._notify(record)
                raise TransactionRejected(f"{record.label}: the node refused it: {err}") from err
            log.warning("%s: refused (%s) but the node has its bytes already (sent "
                        "elsewhere): followed", record.label, err)
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


def _fixed_gas(tx: dict[str, Any]) -> None:
    if "gas" not in tx:
        raise ValueError("give a fixed gas limit: estimation is too slow on hot paths")
