"""Delivery reports: both meters' signed readings to the escrow, sent by the operator.

The first report of a deal fixes its baselines (sent at activation, before the relays close);
then one every step_wh the buyer's meter counted; at Close connection a final one from readings
signed after the relays opened. Readings come from the boards' cache of signed readings, never
asked of a bridge, so nothing here waits on a board and a meter that cannot sign costs no nonce:
the operator's transactions go on whatever the meters do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.signing import SignedReading
from geth_private import TxRecord
from geth_private.records import TxStatus
from geth_private.signed import SignedCall
from marketplace.chain_deals import ChainDeals
from marketplace.errors import MarketError
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.store import Store
from marketplace.switchboard import Switch, Switchboard

log = logging.getLogger(__name__)

FINAL_WAIT_S = 5.0  # how long the final report waits for readings signed after the switch

Pair = tuple[SignedReading, SignedReading]  # (seller's, buyer's)


@dataclass
class Closing:
    """A Close connection under way: the final report to send, then the party's close."""

    after: int  # unix second the relays opened at: readings signed later were taken after it
    until: float  # monotonic time after which the latest readings do instead
    gate: TxRecord  # what the party's close waits for: it takes the final report's status
    call: SignedCall | None = None  # the party's signed closeDeal (None: its wallet sends)
    final: TxRecord | None = None
    done: bool = False  # the final report was sent (or none was needed)
    switch: Switch | None = None  # the relays' queued switch, until it was carried out


class DeliveryReports:
    """Builds and sends a deal's delivery reports from the latest signed readings.

    txs: the settlement's in-flight transactions by (deal id, action); this part writes "report".
    """

    def __init__(
        self, store: Store, ledger: Ledger, switchboard: Switchboard, settings: Settings,
        txs: dict[tuple[int, str], TxRecord], publish: Callable[[int], None], *,
        chain: ChainDeals,
    ):
        self.store = store
        self.ledger = ledger
        self.switchboard = switchboard
        self.settings = settings
        self._txs = txs
        self._publish = publish
        self.chain = chain  # the escrow's deals as its events tell them
        self.closing: dict[int, Closing] = {}  # deal id -> its Close connection under way

    def pair(self, row: dict[str, Any], after: int = 0) -> Pair | None:
        """Both parties' latest signed readings (each by its own meter, none older than after),
        or None while one is missing."""
        seller, buyer = self.signed_of(row["seller"], after), self.signed_of(row["buyer"], after)
        if seller is None or buyer is None:
            return None
        return seller, buyer

    def signed_of(self, address: str, after: int = 0) -> SignedReading | None:
        """A party's latest signed reading by its own meter (none older than after), or None:
        the evidence the escrow pays on, and so what the market counts delivered."""
        party = self.switchboard.party(address)  # its board and its meter, cached
        signed = self.switchboard.signed(party["board_id"])
        meter = party.get("meter_address")
        if signed is None or signed.timestamp < after \
                or str(meter).lower() != signed.meter.lower():
            return None
        return signed

    def delivered(self, row: dict[str, Any], pair: Pair) -> int:
        """The Wh the escrow pays for on these readings: the buyer's meter since the baseline."""
        if row["baseline_wh"] is None:
            return 0
        return max(0, min(row["energy_wh"], pair[1].wh_in - int(row["baseline_wh"])))

    def baseline(self, row: dict[str, Any], chain_id: int, opened_at: int) -> Pair | None:
        """Send the deal's first report (its baselines) once both meters signed a reading
        after the deal opened; the pair sent, or None while waiting for one."""
        pair = self.pair(row, after=opened_at)
        if pair is None:
            return None
        try:
            self._txs[(row["id"], "report")] = self.ledger.report_delivery_async(
                chain_id, pair[0], pair[1])
        except MarketError as err:
            log.warning("baseline report of deal %s not sent: %s", row["id"], err)
            return None
        return pair

    def step(self, row: dict[str, Any], force: bool = False) -> None:
        """Send a report when a step (or the whole deal) was counted; force: any progress."""
        key = (row["id"], "report")
        inflight = self._txs.get(key)
        if inflight is not None and inflight.status == TxStatus.FAILED:
            self._resync(row)
            del self._txs[key]
            inflight = None
        if inflight is not None and inflight.status in (TxStatus.QUEUED, TxStatus.PENDING) \
                and not force:
            return
        pair = self.pair(row)
        if pair is not None:
            self._send(row, pair, force)

    def _send(self, row: dict[str, Any], pair: Pair, force: bool) -> TxRecord | None:
        """The report of this pair when it pays something due; the record sent, or None."""
        delivered = self.delivered(row, pair)
        due = delivered - row["reported_wh"]
        if due <= 0 or (due < self.settings.step_wh and delivered < row["energy_wh"]
                        and not force):
            return None
        try:
            record = self.ledger.report_delivery_async(row["chain_deal_id"], pair[0], pair[1])
        except MarketError as err:
            log.warning("delivery report for deal %s not sent: %s", row["id"], err)
            return None
        self._txs[(row["id"], "report")] = record
        self.store.update_deal(row["id"], reported_wh=delivered)
        row["reported_wh"] = delivered
        # The seller's board is held to what its deals still owe by their buyers' meters.
        self.switchboard.seller_budget(row, float(row["energy_wh"] - delivered))
        return record

    def _resync(self, row: dict[str, Any]) -> None:
        """The last report did not land: count from what the escrow has, so it is sent again."""
        row["reported_wh"] = int(self.chain.deal(row["chain_deal_id"])["deliveredWh"])
        self.store.update_deal(row["id"], reported_wh=row["reported_wh"])

    # -- Close connection ------------------------------------------------------------------

    def begin_close(
        self, row: dict[str, Any], call: SignedCall | None, switch: Switch | None = None
    ) -> Closing:
        """The relays just opened (or will, once switch is carried out): the final report
        waits for readings signed after that."""
        gate = TxRecord(tx_hash=f"final-report-of-deal-{row['id']}", sender="", nonce=-1,
                        label=f"Final delivery report of deal {row['id']}", to=None, value=0,
                        status=TxStatus.QUEUED, created=time.time())
        closing = Closing(after=int(time.time()) + 1, until=time.monotonic() + FINAL_WAIT_S,
                          gate=gate, call=call, switch=switch)
        self.closing[row["id"]] = closing
        return closing

    def finish_close(self, row: dict[str, Any]) -> None:
        """One pass for a deal in closing: send its final report when its readings are in
        (or waited long enough), and let the party's close follow that report's receipt."""
        closing = self.closing.get(row["id"])
        if closing is None:
            return
        if closing.switch is not None:
            if not closing.switch.done:
                return  # the relays are still to open: no reading after them exists yet
            closing.after = max(closing.after, int(closing.switch.done_at or 0) + 1)
            closing.until = time.monotonic() + FINAL_WAIT_S
            closing.switch = None
        if not closing.done:
            pair = self.pair(row, after=closing.after)
            if pair is None and time.monotonic() < closing.until:
                return  # the readings after the switch are a second or two away
            self._resync_if_failed(row)
            pair = pair or self.pair(row)  # waited long enough: the latest readings do
            closing.final = self._send(row, pair, force=True) if pair is not None else None
            closing.done = True
            self._publish(row["id"])
        final = closing.final
        status = TxStatus.MINED if final is None else final.status
        if status not in (TxStatus.QUEUED, TxStatus.PENDING):
            closing.gate.status = status  # the party's close may go now

    def _resync_if_failed(self, row: dict[str, Any]) -> None:
        key = (row["id"], "report")
        inflight = self._txs.get(key)
        if inflight is not None and inflight.status == TxStatus.FAILED:
            self._resync(row)
            del self._txs[key]

    def note(self, deal_id: int) -> dict[str, Any] | None:
        """What a closing deal's view says of its final report (None when none is under way)."""
        closing = self.closing.get(deal_id)
        if closing is None:
            return None
        if not closing.done:
            return {"tx_hash": None, "status": "waiting",
                    "note": "waiting for both meters' signed readings after the switch "
                            f"(at most {FINAL_WAIT_S:.0f} s; then their latest ones are used)"}
        if closing.final is None:
            return {"tx_hash": None, "status": "none",
                    "note": "no final report: the meters' signed readings add nothing to pay"}
        return {"tx_hash": closing.final.tx_hash, "status": closing.final.status}
