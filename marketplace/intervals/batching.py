"""Settlement in batches: due participants' netted positions, as many IntervalSettlement
transactions a boundary as they fill (sent back to back, oldest first), followed to their
receipts; what the contract refused is retried at the next boundary."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from firmware_bridge.signing import SignedReading
from marketplace.clock import Clock
from marketplace.contract_enums import EscrowMarket
from marketplace.interval_minting import MeterMint, mintable_wh, unminted_wh
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.chainside import reopen_forgotten
from marketplace.intervals.orders import BUY, SELL, StandingOrders
from marketplace.intervals.positions import Fills, Key, Positions, group_fills, paid_wei
from marketplace.intervals.store import LOTS, IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings

log = logging.getLogger(__name__)

COMMUNITY = EscrowMarket.COMMUNITY
# Positions and mint readings per batch: with the fixed gas of settle_gas (190 k a sell at
# its dearest) a batch stays below ~8 M, a quarter of a 30 M block, so several fit a block.
MAX_POSITIONS = 40
MAX_BATCHES = 16  # per boundary (640 positions): the rest, the newest, wait for the next


class Batching:
    """Builds, sends and follows batches; one boundary's in flight at a time (the lease
    holder's): the next boundary builds once they are mined, so no fill goes twice."""

    def __init__(self, istore: IntervalStore, orders: StandingOrders, ledger: Ledger,
                 clock: Clock, settings: Settings, boundaries: Boundaries,
                 members: Callable[[], list[dict[str, Any]]],
                 signed: Callable[[str], SignedReading | None]):
        self.istore = istore
        self.orders = orders
        self.ledger = ledger
        self.clock = clock
        self.settings = settings
        self.boundaries = boundaries
        self.members = members  # the interval market's participants with boards and meters
        self.signed = signed  # a board's latest signed reading (no I/O)
        self._tried_through: int | None = None  # batches are built once per boundary
        self._unknown_since: dict[int, float] = {}  # sent batch id -> when first unknown
        self._followed_at = float("-inf")  # when _follow last ran (wall, monotonic)
        self.positions = Positions(istore, ledger, settings, boundaries, on_chain=self._adopt)

    def step(self, through_n: int) -> int | None:
        """Follow the batches in flight, else send the due participants' positions in as
        many batches as they fill; the first one's id."""
        if self._follow():
            return None  # still in flight
        if self._tried_through is not None and through_n <= self._tried_through:
            return None  # built for this boundary already: refused positions wait for the next
        if reopen_forgotten(self.istore, self.ledger):
            return None  # followed again first: nothing is built on the chain that went back
        self._tried_through = through_n
        groups, behind = group_fills(self.istore.unsettled(), through_n, self.boundaries.day)
        due = self._due(groups, behind, self.boundaries.day(through_n))
        positions = [p for p in (self.positions.build(groups[key], through_n) for key in due)
                     if p is not None]
        positions, short = self._with_tokens(positions)
        mints = self._mints({p["account"] for p in positions if p["side"] == SELL}, groups,
                            short)
        first = None
        for chunk, chunk_mints in _chunks(positions, mints):
            batch_id, sent = self._send(through_n, chunk, chunk_mints)
            first = batch_id if first is None else first
            if not sent:
                break  # the chain is away: the rest go at the next boundary
        return first

    # -- who is due ------------------------------------------------------------------------

    def _due(self, groups: dict[Key, Fills], behind: set[Key],
             accounted_day: int) -> list[Key]:
        """Positions to settle now: 1 kWh unsettled, a day wholly accounted since, later fills
        waiting behind it, a COMMUNITY withdrawal or move asked for, or a switch to the lot
        market waiting; buyers added while the sells would overdraw the pool.

        accounted_day is the day of the interval that just ended: an interval is accounted one
        boundary after it ends, so every interval of an earlier day is accounted. Settling at
        the day's first boundary instead would settle the day's last interval (accounted one
        boundary later) as a second position of its own.
        """
        leaving = {r["address"] for r in self.istore.requested_modes() if r["requested"] == LOTS}
        due = []
        for key, fills in groups.items():
            unsettled = sum(int(f["billed_wh"]) for f in fills)
            day_end = self.boundaries.day(fills[0]["n"]) < accounted_day
            # A group with later fills behind it (another order's, a later day's) grows no
            # more: below settle_wh (0 Wh billed while a bridge was away and its relay open)
            # it would hold the account's later fills until the day's end.
            if day_end or unsettled >= self.settings.settle_wh or key in behind or \
                    key[0] in leaving or (key[1] == BUY and self._withdrawing(key[0])):
                due.append(key)
        sells = sum(paid_wei(groups[k]) for k in due if k[1] == SELL)
        if sells:
            pool = self.ledger.intervals.pool_wei() + sum(paid_wei(groups[k]) for k in due
                                                          if k[1] == BUY)
            for key in sorted((k for k in groups if k[1] == BUY and k not in due),
                              key=lambda k: -paid_wei(groups[k])):
                if pool >= sells:
                    break
                due.append(key)
                pool += paid_wei(groups[key])
            # A sell the pool cannot pay is refused (POOL_SHORT) and wastes its gas: it waits.
            for key in sorted((k for k in due if k[1] == SELL),
                              key=lambda k: -paid_wei(groups[k])):
                if pool >= sells:
                    break
                due.remove(key)
                sells -= paid_wei(groups[key])
        # Oldest first (then the lowest address, so workers agree): if a boundary cannot take
        # them all, the newest wait, and lag stays bounded.
        due.sort(key=lambda k: (groups[k][0]["n"], k))
        return due[:MAX_POSITIONS * MAX_BATCHES]

    def _withdrawing(self, address: str) -> bool:
        try:
            return bool(self.ledger.withdrawal_of(address, COMMUNITY)["available_at"])
        except Exception:  # unreadable now: the next boundary asks again
            return False

    def _adopt(self, fills: list[dict[str, Any]]) -> bool:
        """Fills the chain settled already (its position's last interval is past them),
        marked settled fill by fill, each by a batch that holds it; whether their position
        may go on (False: it waits a boundary). Without this their positions went again at
        every boundary, refused NOT_AFTER_LAST, and their Wh counted unsettled for good.

        Several batches may have settled them (two failed as forgotten after one rewind, both
        sent again by their signer), of any status: 'sending' (its worker died between its
        send and recording it), 'failed' as forgotten and mined after all, 'mined' with its
        own transaction refused because another batch over the same fills was mined first.
        A batch with a transaction is taken only when its receipt shows the position settled
        (then marked mined, so reopen_forgotten unsettles its fills should the chain go back
        again): the chain's state was read before, and a rewind in between left the fills
        marked settled by a batch nothing ever looks at again, unpaid on chain. One without
        (never recorded) has nothing to prove it: taken as before."""
        key = (fills[0]["address"], fills[0]["side"])
        newest, proofs = self.istore.newest_batches(), {}
        chosen: dict[int, tuple[dict[str, Any], list[int]]] = {}
        for fill in fills:
            holding = [b for b in newest if fill["id"] in
                       {i for p in b["positions"]["positions"] for i in p["fill_ids"]}]
            if not holding:
                log.error("fill %s is settled on chain by no batch kept here", fill["id"])
                continue
            for b in holding:
                if b["id"] not in proofs:
                    proofs[b["id"]] = bool(b["tx_hash"]) and self._settled_by(b, key)
            batch = next((b for b in holding if proofs[b["id"]]), None) or next(
                (b for b in holding if not b["tx_hash"]), None)
            if batch is None:
                log.warning("fill %s is settled on chain by batch %s, no receipt proves it "
                            "(the chain went back?): its position waits", fill["id"],
                            [b["id"] for b in holding])
                return False
            chosen.setdefault(batch["id"], (batch, []))[1].append(fill["id"])
        for batch, ids in chosen.values():
            log.warning("interval batch %s (%s) was settled on chain: its fills %s marked "
                        "settled", batch["id"], batch["status"], ids)
            self.istore.mark_settled(ids, batch["id"])
            if batch["status"] != "mined":
                self.istore.update_batch(batch["id"], status="mined")
        return True

    def _settled_by(self, batch: dict[str, Any], key: tuple[str, str]) -> bool:
        """Whether a batch's own transaction is mined and settled the (account, side)."""
        from marketplace.intervals.chainside import outcome

        try:
            result = outcome(self.ledger, batch["tx_hash"])
        except Exception:  # unreadable now: not proven
            return False
        return result is not None and result["status"] == "mined" and key in result["settled"]

    def _with_tokens(self, positions: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], set[str]]:
        """The positions, each sell the contract would refuse NO_TOKENS (its tokens plus its
        closing reading's mint below its Wh) held back or cut (_covered); the accounts held
        back, whose latest readings mint meanwhile."""
        kept, short = [], set()
        for built in positions:
            p: dict[str, Any] | None = built
            if built["side"] == SELL:
                try:
                    state = self.ledger.intervals.meter_mint(built["closing"]["meter"])
                    p = _covered(built, state, self.ledger.token_balance(built["account"]))
                except Exception:  # unreadable now: sent as built, the receipt tells
                    pass
            if p is None:
                short.add(built["account"])
                log.info("%s's sell of %s Wh waits for its tokens", built["account"],
                         built["wh"])
                continue
            kept.append(p)
        return kept, short

    def _selling(self, groups: dict[Key, Fills]) -> set[str]:
        """Accounts with sell fills not settled: in a group, or not accounted yet (the
        interval just ended, accounted a boundary later). A producer among the latter whose
        token baseline is pending must not have it set by a mint now: its fill's Wh, counted
        from the fill's start reading, lie before that later baseline and never mint (a chaos
        day's seller: 73 Wh sold, 41 burned, 'only 41 Wh minted for it are burned')."""
        selling = {account for account, side in groups if side == SELL}
        # One read of the fills not settled, accounted or not, now that the mints are built:
        # read as not accounted after the groups' accounted ones, a fill the boundary worker
        # accounted in between was in neither, and its producer's baseline was set by a mint.
        return selling | {f["address"] for f in self.istore.not_settled() if f["side"] == SELL}

    def _mints(self, settling: set[str], groups: dict[Key, Fills], short: set[str]
               ) -> list[dict[str, Any]]:
        """Signed readings of interval producers to mint in this boundary's batches (lot
        producers mint through marketplace.metering.Minting): one whose token baseline is
        pending and no fills (it sets the baseline); one with no fills to settle whose meter
        counted settle_wh more than the token minted; one with fills whose
        position waits for tokens, or whose unminted generation reached half a mint window
        (so no position ever needs more than one window's mint). Not those settling now:
        their closing readings mint."""
        mints, selling = [], self._selling(groups)
        for member in self.members():
            address = member["address"]
            if member["role"] != "producer" or address in settling:
                continue
            reading = self.signed(member["board_id"])
            if reading is None or reading.meter != member["meter_address"]:
                continue
            try:
                state = self.ledger.intervals.meter_mint(reading.meter)
            except Exception:  # unreadable now: the next boundary asks again
                continue
            if state.baseline_pending:
                # Counters before the token's baseline never mint: a producer's is set by its
                # first reading taken, so what it generates after that may be offered (step's
                # _uncommitted); one with fills has its first position's baseline set it.
                if address not in selling:
                    mints.append(reading.to_json())
                continue
            unminted = unminted_wh(state, reading.wh_in, None)
            if address in short or unminted >= (state.window_wh // 2 if address in selling
                                                 else self.settings.settle_wh):
                mints.append(reading.to_json())
        return mints

    # -- sending and following -------------------------------------------------------------

    def _send(self, through_n: int, positions: list[dict[str, Any]],
              mints: list[dict[str, Any]]) -> tuple[int, bool]:
        """Record and send one batch; its id and whether it reached the node."""
        from marketplace.intervals.chainside import batch_of

        batch = batch_of(self.orders, through_n, positions, mints)
        # Signed even when the operator sends it: published, anyone may send it after the
        # contract's window should the operator not.
        signature = "0x" + self.ledger.intervals.sign(batch).operator_sig.hex()
        batch_id = self.istore.add_batch(through_n, {"positions": positions, "mints": mints},
                                         signature,
                                         self.clock.now())
        try:
            record = self.ledger.intervals.settle_async(batch)
        except Exception as err:  # the chain is away: the next boundary tries again
            self.istore.update_batch(batch_id, status="failed", error=str(err)[:500])
            log.warning("interval batch %s not sent: %s", batch_id, err)
            return batch_id, False
        self.istore.update_batch(batch_id, status="sent", tx_hash=record.tx_hash)
        return batch_id, True

    def _follow(self) -> bool:
        """Settle what the batch in flight settled once mined; whether one is still in flight."""
        from marketplace.intervals.chainside import outcome

        now = time.monotonic()
        if now - self._followed_at > self.settings.lease_s:
            # Not followed for longer than the lease (another worker held it): what was seen
            # unknown then says nothing of now (it may have been mined, forgotten, reopened);
            # kept, a batch reopened after a rewind was failed at the first look.
            self._unknown_since.clear()
        self._followed_at = now
        for batch in self.istore.batches(status="sent"):
            result = outcome(self.ledger, batch["tx_hash"])
            if result is None and self._forgotten(batch):
                # Its fills stay unsettled, so the next boundary batches them again; should
                # its bytes still be mined, the contract refuses the repeat (NOT_AFTER_LAST).
                log.warning("interval batch %s forgotten by the chain: its positions go again",
                            batch["id"])
                result = {"status": "failed", "error": "the chain forgot this batch's "
                                                       "transaction (it went back)"}
            if result is None:
                return True
            if result["status"] == "failed":
                self.istore.update_batch(batch["id"], status="failed", error=result["error"])
                continue
            settled = result["settled"]
            for position in batch["positions"]["positions"]:
                if (position["account"], position["side"]) in settled:
                    self.istore.mark_settled(position["fill_ids"], batch["id"])
                else:
                    log.warning("interval batch %s: %s's %s position refused (%s); retried",
                                batch["id"], position["account"], position["side"],
                                result["refused"].get((position["account"], position["side"]), "?"))
            self.istore.update_batch(batch["id"], status="mined")
        return False

    def _forgotten(self, batch: dict[str, Any]) -> bool:
        """Whether a sent batch's transaction stayed unknown to the node (and unsendable from
        here) for FORGOTTEN_AFTER_S wall seconds (a market clock may run emulated time)."""
        from marketplace.intervals.chainside import FORGOTTEN_AFTER_S, unknown_to_node

        if not unknown_to_node(self.ledger, batch["tx_hash"]):
            self._unknown_since.pop(batch["id"], None)
            return False
        since = self._unknown_since.setdefault(batch["id"], time.monotonic())
        return time.monotonic() - since >= FORGOTTEN_AFTER_S


def _covered(p: dict[str, Any], state: MeterMint, tokens: int) -> dict[str, Any] | None:
    """A sell as the contract will take it: as built when tokens and its closing's mint
    cover its Wh; None (held back) when the token's caps (one window, the block-time
    allowance) are the limit and later readings will mint the rest; else cut to what was
    ever minted for it (Wh its meter counted before the token's baseline never mint; a
    first position whose mint outgrew the caps), as _within_floor cuts a sell's burn."""
    covered = tokens + mintable_wh(state, p["closing"], p["baseline"])
    if covered >= p["wh"]:
        return p
    most = tokens + _growth(state, p)
    if not state.baseline_pending and (most >= p["wh"] or covered < most):
        return None
    cut = min(covered, most)
    log.warning("%s's sell of %s Wh: only %s Wh minted for it are burned", p["account"],
                p["wh"], cut)
    return {**p, "wh": cut}


def _growth(state: MeterMint, position: dict[str, Any]) -> int:
    """What a sell's meter counted above the token's counter (or its first baseline) by its
    closing reading: all the later readings can ever mint for it."""
    base = state.last_wh
    if state.baseline_pending:
        base = int(position["baseline"]["whIn"]) if position["baseline"] else int(
            position["closing"]["whIn"])
    return max(int(position["closing"]["whIn"]) - base, 0)


def _chunks(positions: list[dict[str, Any]], mints: list[dict[str, Any]]
            ) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Batches of at most MAX_POSITIONS positions and mint readings: buys first, so the
    pool the sells draw on is charged by earlier transactions (sent back to back with
    consecutive nonces, mined in that order); mints fill the last ones."""
    ordered = [p for p in positions if p["side"] == BUY] + [p for p in positions
                                                            if p["side"] == SELL]
    items: list[tuple[str, dict[str, Any]]] = [("p", p) for p in ordered] + [
        ("m", m) for m in mints]
    chunks = []
    for at in range(0, min(len(items), MAX_POSITIONS * MAX_BATCHES), MAX_POSITIONS):
        part = items[at:at + MAX_POSITIONS]
        chunks.append(([x for kind, x in part if kind == "p"],
                       [x for kind, x in part if kind == "m"]))
    return chunks
