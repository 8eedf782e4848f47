"""What stops a delivering deal: its expiry, a meter offline, the bus check, an empty battery;
and what restarts one: a party's board that opened its relay by itself (switched on again).

Each check acts on one deal's row (relays off, pause, resume, the operator's close on chain)
and says when it is next due (next_due), so the settlement pass need not look at a deal
nothing touched before then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from geth_private import TxRecord
from marketplace.bus import DISAGREEMENT
from marketplace.clock import Clock
from marketplace.contract_enums import CLOSE_REASONS, CloseReason
from marketplace.ledger import Ledger
from marketplace.reports import DeliveryReports
from marketplace.settings import Settings
from marketplace.states import DealState
from marketplace.store import Store
from marketplace.switchboard import Switchboard

log = logging.getLogger(__name__)

EXPIRE_RETRY_S = 5.0  # an expired deal's close the escrow refused is sent again this late


class DealFaults:
    """Expiry, meters offline, a disagreement pause and an empty battery, deal by deal.

    txs: the settlement's in-flight transactions by (deal id, action); this part writes
    "expire" and "fault". set_status: the settlement's status write that a request's move wins.
    """

    def __init__(
        self, store: Store, ledger: Ledger, switchboard: Switchboard, clock: Clock,
        settings: Settings, txs: dict[tuple[int, str], TxRecord], *,
        publish: Callable[[int], None], set_status: Callable[..., bool],
        reports: DeliveryReports,
    ):
        self.store = store
        self.ledger = ledger
        self.switchboard = switchboard
        self.clock = clock
        self.settings = settings
        self._txs = txs
        self._publish = publish
        self._set_status = set_status
        self.reports = reports
        self.paused_at: dict[int, float] = {}  # deal id -> when pause() stopped it
        self._expire_retry_at: dict[int, float] = {}
        self._offline_since: dict[int, float] = {}  # deal id -> when a meter went offline
        self._lost: set[int] = set()  # active deals a board of which opened its relay itself

    def check(self, row: dict[str, Any]) -> bool:
        """Whether a delivering or paused deal is stopped (expired, disagreed, faulty)."""
        return self._expired(row) or self._disagreed(row) or self._faulty(row)

    def next_due(self, row: dict[str, Any]) -> float | None:
        """When this deal's checks act next without anything else happening (at or before
        now: at every pass until it moves on; None: only when something touches it)."""
        did, now, settings = row["id"], self.clock.now(), self.settings
        if row["status"] not in (DealState.ACTIVE, DealState.PAUSED):
            return None
        times = [float(row["expires_at"])] if row["expires_at"] else []
        since = self._offline_since.get(did)
        if since is not None:
            times.append(since + settings.offline_close_s)
            if row["status"] == DealState.ACTIVE:
                times.append(since + settings.offline_grace_s)
        if self._disagreement(row):
            times.append(self.paused_at.get(did, now) + settings.offline_close_s)
        if row["status"] == DealState.ACTIVE and row["delivered_wh"] >= row["energy_wh"]:
            times.append(now)  # all delivered: relays off each pass until the escrow closes it
        if row["status"] == DealState.ACTIVE and did in self._lost:
            times.append(now)  # a relay to switch on again (at most every AGAIN_S a board)
        return min(times) if times else None

    def pause(self, row: dict[str, Any], reason: str) -> None:
        """Stop a delivering deal, relays off, with a reason both parties see (the bus check)."""
        self.switchboard.relays(row, on=False)
        if not self._set_status(row, DealState.PAUSED, error=reason):
            return
        row.update(status=DealState.PAUSED, error=reason)
        self.paused_at[row["id"]] = self.clock.now()
        self._publish(row["id"])

    def close_for_fault(self, row: dict[str, Any], reason: CloseReason) -> None:
        """The operator ends the deal on chain (once; retried if the send fails)."""
        record = self._txs.get((row["id"], "fault"))
        if record is not None and record.status != "failed":
            return
        self.reports.step(row, force=True)  # pay what the meters signed first
        try:
            self._txs[(row["id"], "fault")] = self.ledger.close_for_fault_async(
                row["chain_deal_id"], reason
            )
        except Exception as err:
            log.warning("deal %s not closed for %s yet: %s", row["id"], CLOSE_REASONS[reason], err)

    def _disagreement(self, row: dict[str, Any]) -> bool:
        return row["status"] == DealState.PAUSED and (row["error"] or "").startswith(DISAGREEMENT)

    def _expired(self, row: dict[str, Any]) -> bool:
        """Past its expiry a deal stops: relays off, and the operator closes it on chain."""
        did = row["id"]
        if not row["expires_at"] or self.clock.now() < row["expires_at"]:
            return False
        self.switchboard.relays(row, on=False)
        record = self._txs.get((did, "expire"))
        due = self.clock.now() >= self._expire_retry_at.get(did, 0.0)
        if (record is None or record.status == "failed") and due:
            try:
                self._txs[(did, "expire")] = self.ledger.close_expired_async(
                    row["chain_deal_id"]
                )
            except Exception as err:  # e.g. the chain's clock is not there yet
                self._expire_retry_at[did] = self.clock.now() + EXPIRE_RETRY_S
                log.info("expired deal %s not closed yet: %s", did, err)
        return True

    def _disagreed(self, row: dict[str, Any]) -> bool:
        """A deal the bus check paused stays paused (its parties may close it); paused longer
        than offline_close_s, the operator ends it for the fault."""
        if not self._disagreement(row):
            return False
        since = self.paused_at.setdefault(row["id"], self.clock.now())  # (after a restart)
        if self.clock.now() - since >= self.settings.offline_close_s:
            # MetersDisagree once the escrow knows it (issue 14's contracts), else MeterOffline.
            self.close_for_fault(row, getattr(CloseReason, "METERS_DISAGREE",
                                              CloseReason.METER_OFFLINE))
        return True

    def _faulty(self, row: dict[str, Any]) -> bool:
        """Meters offline or the seller's battery empty: pause, resume, or end the deal."""
        did, now, settings = row["id"], self.clock.now(), self.settings
        boards = [self.switchboard.board_of(row["seller"]), self.switchboard.board_of(row["buyer"])]
        offline = [b for b in boards if not self.switchboard.online(b)]
        if offline:
            if did not in self._offline_since:
                self._offline_since[did] = now
                # Both parties see it at once, before the grace period runs out.
                self.store.update_deal(did, error=f"meter {', '.join(offline)} offline")
                self._publish(did)
            since = self._offline_since[did]
            if row["status"] == DealState.ACTIVE and now - since >= settings.offline_grace_s:
                self.switchboard.relays(row, on=False)
                if self._set_status(row, DealState.PAUSED,
                                    error=f"meter {', '.join(offline)} offline: paused"):
                    self._publish(did)
            if now - since >= settings.offline_close_s:
                self.close_for_fault(row, CloseReason.METER_OFFLINE)
            return True
        if self._offline_since.pop(did, None) is not None and row["status"] == DealState.PAUSED:
            # Back before the deal was ended: resume where the meter says it is. Relays first,
            # so whoever sees "active" can rely on energy flowing (as at activation).
            self.switchboard.budget(row, float(row["energy_wh"] - row["delivered_wh"]))
            self.switchboard.relays(row, on=True)
            if not self._set_status(row, DealState.ACTIVE, error=None):
                self.switchboard.relays(row, on=False)  # closed meanwhile: off again
                return True
            self._publish(did)
        seller = self.switchboard.read(boards[0])
        if seller is not None and seller.soc is not None and seller.soc <= settings.empty_soc:
            self.switchboard.relays(row, on=False)
            self.close_for_fault(row, CloseReason.SUPPLY_EXHAUSTED)
            return True
        self._switch_back(row, boards)
        return False

    def _switch_back(self, row: dict[str, Any], boards: list[str]) -> None:
        """A party's board back faster than the offline grace (a reboot, a restarted bridge)
        or whose failsafe tripped has its relay open, and nothing else would close it: the
        deal's remaining budget and the relay again. A spent budget is the delivery's end."""
        did = row["id"]
        active = row["status"] == DealState.ACTIVE
        lost = [b for b in boards if self.switchboard.opened_itself(b)] if active else []
        left = self._left_wh(row) if lost else 0.0
        if left <= 0:
            self._lost.discard(did)
            return
        self._lost.add(did)
        for board in lost:
            self.switchboard.switch_back(row, board, left)

    def _left_wh(self, row: dict[str, Any]) -> float:
        """Wh the buyer's meter has still to receive: as signed since the baseline (or as
        stored, when that is more)."""
        used = float(row["delivered_wh"])
        reading = self.reports.signed_of(row["buyer"])
        if reading is not None and row["baseline_wh"] is not None:
            used = max(used, float(reading.wh_in) - float(row["baseline_wh"]))
        return max(float(row["energy_wh"]) - used, 0.0)
