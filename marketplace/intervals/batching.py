"""Settlement in batches: due participants' netted positions in one IntervalSettlement
transaction, followed to its receipt; what the contract refused is retried in the next batch."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from firmware_bridge.signing import SignedReading
from marketplace.clock import Clock
from marketplace.contract_enums import EscrowMarket
from marketplace.interval_accounts import max_burn_wh
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.orders import BUY, SELL, StandingOrders
from marketplace.intervals.store import LOTS, IntervalStore
from marketplace.ledger import Ledger
from marketplace.settings import Settings

log = logging.getLogger(__name__)

COMMUNITY = EscrowMarket.COMMUNITY
MAX_POSITIONS = 40  # per batch: keeps one settle far below a block's gas


class Batching:
    """Builds, sends and follows batches; one in flight at a time (the lease holder's)."""

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

    def step(self, through_n: int) -> int | None:
        """Follow the batch in flight, else send one for the due participants; its id."""
        if self._follow():
            return None  # still in flight
        if self._tried_through is not None and through_n <= self._tried_through:
            return None  # built for this boundary already: refused positions wait for the next
        self._tried_through = through_n
        groups = self._groups(through_n)
        due = self._due(groups, self.boundaries.day(through_n))
        positions = [p for p in (self._position(groups[key]) for key in due) if p is not None]
        # A producer with fills to settle mints with them: an extra reading newer than their
        # closing one would leave that one stale.
        mints = self._mints({account for account, _ in groups})
        if not positions and not mints:
            return None
        return self._send(through_n, positions, mints)

    # -- who is due ------------------------------------------------------------------------

    def _groups(self, through_n: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Unsettled fills up to through_n per (account, side), the oldest order's and day's
        only: a position names one order and may not span two days (the daily budget), so
        later fills settle after it."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for fill in self.istore.unsettled():
            if fill["n"] > through_n:
                continue
            key = (fill["address"], fill["side"])
            first = groups[key][0] if groups[key] else None
            if first is not None and (first["order_id"] != fill["order_id"] or
                                      self.boundaries.day(first["n"]) !=
                                      self.boundaries.day(fill["n"])):
                continue
            groups[key].append(fill)
        return groups

    def _due(self, groups: dict[tuple[str, str], list[dict[str, Any]]],
             accounted_day: int) -> list[tuple[str, str]]:
        """Positions to settle now: 1 kWh unsettled, a day wholly accounted since, a COMMUNITY
        withdrawal or move asked for, or a switch to the lot market waiting; buyers added while
        the sells would overdraw the pool.

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
            if day_end or unsettled >= self.settings.settle_wh or key[0] in leaving or (
                    key[1] == BUY and self._withdrawing(key[0])):
                due.append(key)
        sells = sum(_wei(groups[k]) for k in due if k[1] == SELL)
        if sells:
            pool = self.ledger.intervals.pool_wei() + sum(_wei(groups[k]) for k in due
                                                          if k[1] == BUY)
            for key in sorted((k for k in groups if k[1] == BUY and k not in due),
                              key=lambda k: -_wei(groups[k])):
                if pool >= sells:
                    break
                due.append(key)
                pool += _wei(groups[key])
            # A sell the pool cannot pay is refused (POOL_SHORT) and wastes its gas: it waits.
            for key in sorted((k for k in due if k[1] == SELL), key=lambda k: -_wei(groups[k])):
                if pool >= sells:
                    break
                due.remove(key)
                sells -= _wei(groups[key])
        return due[:MAX_POSITIONS]

    def _withdrawing(self, address: str) -> bool:
        try:
            return bool(self.ledger.withdrawal_of(address, COMMUNITY)["available_at"])
        except Exception:  # unreadable now: the next boundary asks again
            return False

    # -- a position ------------------------------------------------------------------------

    def _position(self, fills: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One account's netted position over its fills with a closing reading, as JSON."""
        row = self.orders.istore.order(fills[0]["order_id"])
        meter = row["order"]["meter"]
        account, side = fills[0]["address"], fills[0]["side"]
        closing, included = None, []
        for fill in fills:  # the last fill with an end reading closes the position
            end = self.istore.readings(fill["n"])["end"].get(meter)
            included.append(fill)
            if end is not None:
                closing, last = end, len(included)
        if closing is None:
            return None
        included = included[:last]
        baseline = None
        if self._settled_through(account, meter) == 0:
            baseline = self.istore.readings(included[0]["n"])["start"].get(meter)
            if baseline is None:
                return None
        wh = sum(int(f["billed_wh"]) for f in included)
        if side == SELL:  # never a sell the contract refuses (PRICE): fewer Wh burned
            wh = self._within_floor(account, wh, _wei(included), row["order"])
        return {"account": account, "side": side, "order_id": row["id"], "kind": row["kind"],
                "order": row["order"], "order_sig": self._order_sig(row),
                "closing": closing, "baseline": baseline,
                "from_interval": included[0]["n"], "to_interval": self._to(included[-1]),
                "filled_intervals": sum(1 for f in included if f["wh"] > 0),
                "wh": wh, "wei": str(_wei(included)), "fill_ids": [f["id"] for f in included]}

    def _to(self, last: dict[str, Any]) -> int:
        """The position's last interval: the one after its last fill when that fill closed on
        the next interval's end reading (its spill: marketplace.intervals.accounting), so the
        baseline's age bound spans it too; a buy stays within its day."""
        later = self.istore.next_n(last["n"]) if last.get("spill_wh") else None
        if later is None or (last["side"] == BUY and
                             self.boundaries.day(later) != self.boundaries.day(last["n"])):
            return last["n"]
        return later

    def _within_floor(self, account: str, wh: int, wei: int, order: dict[str, Any]) -> int:
        """A sell's Wh cut to what its payout covers at floor × (1 − the contract's loss bound)
        (the accounts cap each fill so already; fills accounted before that are cut here)."""
        most = max_burn_wh(wei, int(order["floorWeiPerKWh"]),
                           self.settings.max_line_loss_bps(), exact=True)
        if wh > most:
            log.warning("%s's sell of %s Wh for %s wei is below its floor less the line loss "
                        "bound: %s Wh burned", account, wh, wei, most)
        return min(wh, most)

    def _order_sig(self, row: dict[str, Any]) -> str:
        """The order's signature, or "0x" once the contract verified it (it keeps the hash)."""
        try:
            state = self.ledger.intervals.order_state(bytes.fromhex(row["hash"][2:]))["state"]
        except Exception:  # unreadable: the signature is always accepted
            return row["signature"]
        return "0x" if state == "verified" else row["signature"]

    def _settled_through(self, account: str, meter: str) -> int:
        """The last interval the contract settled for an account on its meter (0: none yet)."""
        return int(self.ledger.intervals.position_of(account, meter)["last_interval"])

    def _mints(self, selling: set[str]) -> list[dict[str, Any]]:
        """Signed readings of interval producers with no fills to settle whose
        meter counted settle_wh more than the token minted: they mint in the same transaction
        (lot producers mint through marketplace.metering.Minting)."""
        mints = []
        for member in self.members():
            if member["role"] != "producer" or member["address"] in selling:
                continue
            reading = self.signed(member["board_id"])
            if reading is None or reading.meter != member["meter_address"]:
                continue
            try:
                minted = int(self.ledger.meter_of(reading.meter)["last_reading_wh"])
            except Exception:  # unreadable now: the next boundary asks again
                continue
            if reading.wh_in - minted >= self.settings.settle_wh:
                mints.append(reading.to_json())
        return mints[:MAX_POSITIONS]

    # -- sending and following -------------------------------------------------------------

    def _send(self, through_n: int, positions: list[dict[str, Any]],
              mints: list[dict[str, Any]]) -> int:
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
            return batch_id
        self.istore.update_batch(batch_id, status="sent", tx_hash=record.tx_hash)
        return batch_id

    def _follow(self) -> bool:
        """Settle what the batch in flight settled once mined; whether one is still in flight."""
        from marketplace.intervals.chainside import outcome

        for batch in self.istore.batches(status="sent"):
            result = outcome(self.ledger, batch["tx_hash"])
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


def _wei(fills: list[dict[str, Any]]) -> int:
    return sum(int(f["paid_wei"] or 0) for f in fills)
