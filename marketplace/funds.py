"""What a bid's or a listing's checks read of the chain, kept in memory: a request reads only
kept values; the values are refreshed off the request path, for the addresses the events name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from web3 import Web3

from geth_private import TxRecord
from geth_private.records import WAITING, TxStatus
from marketplace.chainlog import LogCursor
from marketplace.ledger import Ledger

log = logging.getLogger(__name__)

ESCROW, TOKENS = "escrow", "tokens"  # (free escrow, withdrawing) / (token balance, allowance)
ZERO = "0x" + "00" * 20
MAX_DEALS = 10_000  # deal id -> buyer remembered (a DealClosed names the deal, not its buyer)

# Event -> (kind, topic positions naming an address) for the events that change a kept value;
# every one of them names its address in an indexed topic, so no log is ABI-decoded.
_NAMES = {
    "Deposited": (ESCROW, (1,)), "WithdrawalRequested": (ESCROW, (1,)),
    "Withdrawn": (ESCROW, (1,)), "Moved": (ESCROW, (1,)), "DealOpened": (ESCROW, (3,)),
    "Transfer": (TOKENS, (1, 2)), "Approval": (TOKENS, (1,)),
}
_OFFERS = ("DealOpened", "OfferCancelled")  # offer hash in topic 2 / topic 1
_CLOSED = "DealClosed"  # deal id in topic 1: its buyer got the unspent Ether back


class _Memory:
    """A LogCursor's position kept in this process (ChainStore's cursor(), nothing durable):
    kept values live in memory, so a restart reads them afresh and follows from the head."""

    def __init__(self) -> None:
        self.at: tuple[int, str | None] | None = None

    def cursor(self, name: str) -> tuple[int, str | None] | None:
        return self.at


class Funds:
    """Per address, (free escrow, pending withdrawal) in the lots market and (token balance,
    escrow's allowance), with the block each was read at; the offers used on chain.

    A kept value is current while no event since its block names its address. Events are
    learnt two ways, both off the request path: a transaction this process follows is mined
    (its receipt's logs: the addresses they name are marked changed and the loop woken to read
    them again), and step(), the `funds` loop's pass, reads the contracts' new logs through an
    in-memory cursor and re-reads the known addresses they name, at the pass's last block.
    Only the loop keeps values: it reads at blocks its cursor has seen, so a chain that goes
    back under a read shows to its next pass (a read elsewhere could be of a block the chain
    then forgets, under a number the new history reuses with other values). So a deposit or a
    withdrawal sent through another worker (or a wallet's own node) shows here within one pass
    of the loop (EVENT_POLL_S, 0.5 s) plus its reads after it is mined; one through this worker
    within the pass its receipt wakes, and while it is in flight here its sender's bids read the
    escrow themselves (the deposit a person just made lands any moment, and the next bid must
    see it). A request reads an address itself, for itself only, when it is not known here or
    was marked changed and not read yet, and has the loop read it (learn() at sign-in and at
    the market channel's join has the loop read it first); and a listing (or its terms) its
    kept tokens would refuse reads them once (tokens_now: a mint just mined elsewhere). A chain
    that went back (anvil from an older state dump) re-reads every known address at the new
    head, serving the old values until then.

    Why stale is safe: the escrow's openDeal checks the winner's free balance itself, and a
    winner it refuses gives way to the next covered bid (opening.py); a withdrawal cannot void
    a leading bid (its notice outlasts any auction's close). Until a change shows here a bid
    may be refused as uncovered or taken uncovered, never an uncovered one taken on chain; the
    same for a listing's tokens and allowance (openDeal takes the lot or fails). An offer used
    on chain before this process started is not known here: the store refuses one listed
    before, and the escrow refuses to open a deal from a cancelled one, as it would for an
    offer its seller cancels after listing it.
    """

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.wake: Callable[[], object] = lambda: None  # the funds loop's, once it runs
        self._lock = threading.Lock()  # the maps only; never held across a chain read
        self._passing = threading.Lock()  # one pass at a time (no request ever takes it)
        self._known: dict[tuple[str, str], tuple[int, tuple[int, int]]] = {}
        # key -> the last block an event named it in; unknown keys too (a request may be
        # reading one meanwhile), so it grows with the accounts the contracts ever named.
        self._changed: dict[tuple[str, str], int] = {}
        self._wanted: set[str] = set()  # learn() asked; the loop reads them
        self._sending: dict[str, set[str]] = {}  # sender -> its escrow txs in flight here
        self._used_offers: set[bytes] = set()
        self._buyers: dict[int, str] = {}  # chain deal id -> buyer, from DealOpened
        self._memory = _Memory()
        self._cursor: LogCursor | None = None
        self._topics: dict[bytes, str] = {}
        ledger.txm.subscribe(self._saw)

    # -- what requests read ----------------------------------------------------------------

    def of(self, bidder: str) -> tuple[int, int]:
        """(free escrow, pending withdrawal amount) of a bidder in the lots market, in wei."""
        return self._value(ESCROW, bidder)

    def tokens(self, address: str) -> tuple[int, int]:
        """(energy tokens held, the escrow's allowance) of an address, in Wh."""
        return self._value(TOKENS, address)

    def tokens_now(self, address: str) -> tuple[int, int]:
        """(tokens, allowance) read from the chain now, for a listing the kept ones would
        refuse: tokens another worker just minted show here only after a pass, and a refusal
        must not be stale (has the loop read them too)."""
        self._want({address})
        return self._fetch((TOKENS, address), self.ledger.block_number())

    def offer_used(self, digest: bytes) -> bool:
        """Whether an offer opened a deal or was cancelled, as far as this process has seen."""
        with self._lock:
            return bytes(digest) in self._used_offers

    def known(self, address: str) -> bool:
        """Whether both of an address's values are kept here and current (a request reads
        neither from the chain)."""
        with self._lock:
            return all(self._current((kind, address)) for kind in (ESCROW, TOKENS))

    def learn(self, address: str) -> None:
        """Have the loop read an address's values (sign-in, a channel's join): no I/O here."""
        with self._lock:
            if all(self._current((kind, address)) for kind in (ESCROW, TOKENS)):
                return
            self._wanted.add(address)
        self.wake()

    # -- refreshing, off the request path -----------------------------------------------------

    def step(self) -> None:
        """One pass of the funds loop: read what learn() asked for, then the new blocks' logs
        of both contracts, re-reading the known addresses they name."""
        with self._passing:
            found = self._follow().read()
            with self._lock:
                wanted, self._wanted = self._wanted, set()
                targets = {(kind, a) for a in wanted for kind in (ESCROW, TOKENS)}
                if found.rewound:  # blocks numbered as before may hold other values now
                    self._known = {k: (-1, v) for k, (_, v) in self._known.items()}
                    self._changed.clear()
                if found.seen is None or found.rewound:  # first pass, or the chain went back
                    targets |= set(self._known)
            targets |= self._note(found.logs)
            self._read(targets, found.end)
            self._memory.at = (found.end + 1, found.end_hash)

    def _saw(self, record: TxRecord) -> None:
        """News of a transaction this process follows: one to the escrow in flight makes its
        sender's escrow be read by its bids until it lands; a mined one's logs name what is
        read again (marked changed first, so no bid meanwhile takes the old value)."""
        escrow = self.ledger.escrow
        if escrow is None:
            return
        to_escrow = str(record.to or "").lower() == escrow.address.lower()
        if to_escrow and record.status in WAITING:
            with self._lock:
                self._sending.setdefault(record.sender, set()).add(record.tx_hash)
            return
        receipt = record.receipt if record.status == TxStatus.MINED else None
        contracts = {escrow.address.lower(), self.ledger.token.address.lower()}
        logs = [raw for raw in (receipt or {}).get("logs", ())
                if str(raw["address"]).lower() in contracts]
        if to_escrow:  # first: a failing _note must not leave the sender's bids reading
            with self._lock:
                sent = self._sending.get(record.sender, set())
                sent.discard(record.tx_hash)
                if not sent:
                    self._sending.pop(record.sender, None)
        keys = self._note(logs) if logs else set()
        if keys:
            self._want({address for _, address in keys})

    def _note(self, logs: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
        """Mark what the logs name as changed at their block; the known (or wanted) keys."""
        changed: dict[tuple[str, str], int] = {}
        for raw in logs:
            topics = [bytes(t) for t in raw["topics"]]
            name = self._event_names().get(topics[0]) if topics else None
            block = int(raw["blockNumber"])
            if name in _OFFERS:
                with self._lock:
                    self._used_offers.add(topics[2 if name == "DealOpened" else 1])
            if name == "DealOpened":
                self._remember_buyer(int.from_bytes(topics[1], "big"), _address(topics[3]))
            for key in self._keys(name, topics):
                changed[key] = max(changed.get(key, -1), block)
        with self._lock:
            for key, block in changed.items():
                self._changed[key] = max(self._changed.get(key, -1), block)
            # Known and now older than the event (a receipt seen here may have read it already),
            # or asked for by learn().
            return {k for k in changed
                    if (k in self._known and not self._current(k)) or k[1] in self._wanted}

    def _keys(self, name: str | None, topics: list[bytes]) -> list[tuple[str, str]]:
        if name == _CLOSED:
            buyer = self._buyer_of(int.from_bytes(topics[1], "big"))
            return [(ESCROW, buyer)] if buyer else []
        kind, positions = _NAMES.get(name or "", (None, ()))
        if name == "Approval" and _address(topics[2]) != self.ledger.escrow.address:
            return []  # an allowance to someone else: not the one a listing needs
        return [(kind, a) for a in (_address(topics[p]) for p in positions) if a != ZERO]

    def _read(self, keys: Iterable[tuple[str, str]], block: int) -> None:
        """Read keys at a block (outside the lock) and keep what is newer than what is kept."""
        for key in sorted(keys):
            try:
                value = self._fetch(key, block)
            except Exception as err:  # the node hiccupped: the next request reads it itself
                log.warning("funds of %s not read at block %s: %s", key[1], block, err)
                continue
            self._keep(key, block, value)

    # -- internals -------------------------------------------------------------------------

    def _value(self, kind: str, address: str) -> tuple[int, int]:
        key = (kind, address)
        with self._lock:
            known = self._known.get(key) if self._current(key) else None
        if known is not None:
            return known[1]
        # Never read in this process, or changed and not read yet: read here, for this request
        # only. Only the loop keeps values: it reads at blocks its cursor has seen, so a rewind
        # shows to it; a read here may be of a block the chain is about to forget, under a
        # number the new history reuses with other values.
        self._want({address})
        return self._fetch(key, self.ledger.block_number())

    def _want(self, addresses: set[str]) -> None:
        """Have the loop's next pass read these addresses (woken now)."""
        with self._lock:
            self._wanted |= addresses
        self.wake()

    def _current(self, key: tuple[str, str]) -> bool:
        """Whether a kept value is as new as the last event naming it, and no escrow
        transaction of its own is in flight here (lock held)."""
        known = self._known.get(key)
        if key[0] == ESCROW and key[1] in self._sending:
            return False  # a deposit sent here lands any moment: its bid reads it
        return known is not None and known[0] >= self._changed.get(key, -1)

    def _keep(self, key: tuple[str, str], block: int, value: tuple[int, int]) -> None:
        with self._lock:
            known = self._known.get(key)
            if known is None or known[0] <= block:  # a read at a later block wins
                self._known[key] = (block, value)

    def _fetch(self, key: tuple[str, str], block: int) -> tuple[int, int]:
        kind, address = key
        if kind == ESCROW:
            return self.ledger.escrow_funds_at(address, block)
        return self.ledger.tokens_at(address, block)

    def _follow(self) -> LogCursor:
        addresses = [self.ledger.token.address, self.ledger.escrow.address]
        if self._cursor is None or self._cursor.addresses != addresses:
            self._memory.at = None  # new contracts: start at the head, read everything again
            topics = ["0x" + t.hex() for t in self._event_names()]
            self._cursor = LogCursor(self._memory, "funds", self.ledger.w3,  # type: ignore[arg-type]
                                     addresses, topics, start=None)
        return self._cursor

    def _event_names(self) -> dict[bytes, str]:
        """topic0 -> event name of the events followed here (from the contracts' ABIs)."""
        if not self._topics:
            for contract in (self.ledger.escrow, self.ledger.token):
                for event in contract.all_events():
                    if event.event_name in (*_NAMES, *_OFFERS, _CLOSED):
                        self._topics[bytes.fromhex(event.topic.removeprefix("0x"))] = \
                            event.event_name
        return self._topics

    def _remember_buyer(self, deal_id: int, buyer: str) -> None:
        with self._lock:
            if len(self._buyers) >= MAX_DEALS:
                self._buyers.pop(next(iter(self._buyers)))
            self._buyers[deal_id] = buyer

    def _buyer_of(self, deal_id: int) -> str | None:
        with self._lock:
            buyer = self._buyers.get(deal_id)
        if buyer is None:  # opened before this process followed the escrow
            buyer = self.ledger.chain_deal(deal_id)["buyer"]
        return buyer


def _address(topic: bytes) -> str:
    """The checksummed address an indexed topic carries."""
    return Web3.to_checksum_address(topic[-20:])
