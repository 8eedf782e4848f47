"""The settlement: a deal after its auction, opened on the escrow once, delivered, closed.

Only the worker holding the settlement lease (marketplace.lease) advances deals: it alone
sends the operator's transactions (meters send none: they sign readings), so workers sharing
one chain account never race for its nonces.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from geth_private import TxRecord
from geth_private.signed import SignedCall
from marketplace import rules, signed
from marketplace.agenda import Agenda, TxBook
from marketplace.chain_deals import ChainDeals, deal_ids
from marketplace.clock import Clock
from marketplace.contract_enums import CLOSE_REASONS, DealStatus
from marketplace.deal_faults import DealFaults
from marketplace.errors import DealNotActive, InvalidInput, NotAllowed, NotFound
from marketplace.events import Hub
from marketplace.ledger import Ledger
from marketplace.opening import DealOpening
from marketplace.reports import DeliveryReports
from marketplace.settings import Settings
from marketplace.states import DealState
from marketplace.store import Store
from marketplace.switchboard import Switchboard
from marketplace.views import deal_view

log = logging.getLogger(__name__)


class Settlement:
    """Opens, activates, reports, pauses, closes and follows deals; owns their transactions.

    lock: the settlement pass's own (advance_all holds it, chain and board I/O included); no
    request takes it. A request (close_connection) and the pass meet only under _guard, held
    for store writes alone: the pass writes a deal's new status only if a request has not
    moved it meanwhile (_set_status). A pass visits the deals its agenda says something
    touched (marketplace.agenda), so an idle pass costs the same at 10 deals or 1,000.
    """

    def __init__(
        self, store: Store, ledger: Ledger, switchboard: Switchboard, clock: Clock, hub: Hub,
        settings: Settings, lock: threading.RLock,
    ):
        self.store = store
        self.ledger = ledger
        self.switchboard = switchboard
        self.clock = clock
        self.hub = hub
        self.settings = settings
        self.lock = lock
        self._guard = threading.RLock()  # a deal's status: a request's write vs the pass's
        self._meters: dict[str, str] = {}  # board id -> its meter's address
        self._txs = TxBook()  # (deal id, action) -> its transaction (those in flight followed)
        # A worker sharing the store may have held the lease while this one paused: a gap
        # that long sweeps (a store of its own has no other worker).
        self.agenda = Agenda(store, switchboard, clock,
                             gap_s=settings.lease_s if store.shared else math.inf)
        # The escrow's deals as its events tell them (one getLogs cursor, not a read a deal).
        self.chain = ChainDeals(store, ledger)
        self.reports = DeliveryReports(store, ledger, switchboard, settings, self._txs,
                                       self._publish, chain=self.chain)
        self.opening = DealOpening(store, ledger, switchboard, clock, settings, self._txs,
                                   self._publish, reports=self.reports, chain=self.chain)
        self.faults = DealFaults(store, ledger, switchboard, clock, settings, self._txs,
                                 publish=self._publish, set_status=self._set_status,
                                 reports=self.reports)

    # -- meters and what is in flight ------------------------------------------------------

    def add_meter(self, board_id: str, meter: str) -> None:
        """The address of the key a board's meter signs its readings with."""
        self._meters[board_id] = meter

    def meter(self, board_id: str) -> str:
        """The meter address of a board, or NotFound."""
        if board_id not in self._meters:
            raise NotFound(f"no meter key for board {board_id}")
        return self._meters[board_id]

    def transactions(self) -> dict[tuple[int, str], TxRecord]:
        """The deals' transactions this worker sent and still follows: (deal id, action)."""
        return dict(self._txs)

    def retrying(self) -> list[int]:
        """Deals whose openDeal failed to send and waits to be sent again."""
        return self.opening.retrying()

    # -- queries ---------------------------------------------------------------------------

    def deal(self, deal_id: object) -> dict[str, Any]:
        """One deal as the pages show it (while closing: the final report's hash)."""
        view = deal_view(self.store, self._deal_row(deal_id))
        final = self.reports.note(view["id"])
        if view["status"] == DealState.CLOSING and final is not None:
            view["final_report"] = final
        return view

    def deals(self, address: str | None = None) -> list[dict[str, Any]]:
        """Deals, newest first; only those an address is party to when given."""
        rows = self.store.deals()
        if address:
            rows = [r for r in rows if address in (r["buyer"], r["seller"])]
        return [deal_view(self.store, r) for r in rows]

    # -- commands and the loop -------------------------------------------------------------

    def prepare_close(self, party: str, deal_id: object) -> dict[str, Any]:
        """The closeDeal a party signs for Close connection (checked and simulated first)."""
        row = self._closable(party, deal_id)
        tx = self.ledger.user_tx("EnergyEscrow", "closeDeal", [row["chain_deal_id"]])
        label = "Close connection"
        return signed.prepared(self.ledger.prepare(party, tx, label), label)

    def close_connection(
        self, party: str, deal_id: object, signed_close: object = None
    ) -> dict[str, Any]:
        """The buyer (or seller) ends a delivering or paused deal: relays off, then (in the
        next ticks) the final report from both meters' readings signed after the switch, and
        the party's own signed closeDeal sent once that report has its receipt (the last Wh is
        paid before the escrow refunds the rest). Without signed_close (a wallet that sends
        itself), the view's final_report says what to wait for before the wallet sends it.
        Nothing here waits on a board: a meter away costs the report, never the close."""
        call = None if signed_close is None else signed.signed_call(signed_close, "close")
        row = self._closable(party, deal_id)
        if call is not None:
            self._check_close(party, row, call)
        with self._guard:  # store writes only: the pass's own writes re-check under it
            row = self._closable(party, deal_id)
            did = row["id"]
            self.store.update_deal(did, status=DealState.CLOSING)
        # The relays: a queued switch the switchboard's loop carries out (no board I/O here);
        # the final report waits for readings signed after it was carried out.
        switch = self.switchboard.switch_soon(row, on=False)
        closing = self.reports.begin_close(row, call, switch)
        if call is not None:  # queued with its hash: it goes once the final report is mined
            self._txs[(did, "close")] = self.ledger.submit(call, "Close connection",
                                                          closing.gate)
        self.agenda.moved(did)
        view = self.deal(did)
        self.hub.publish("deal_updated", view)
        return view

    def pause(self, row: dict[str, Any], reason: str) -> None:
        """Stop a delivering deal, relays off, with a reason both parties see (the bus check)."""
        self.faults.pause(row, reason)

    def begin(self, deal_id: int, send: bool) -> None:
        """A deal an auction just made: send its openDeal now (send) or at a later pass."""
        if send:
            self.opening.send(self.store.deal(deal_id))
        self._publish(deal_id)

    def advance_all(self) -> None:
        """One pass over the live deals something touched (the agenda): follow their
        transactions, faults and delivery.

        Relays a request asked to switch go first; then each deal from its row as stored
        now. The pass holds only its own lock: requests go on meanwhile (see _set_status).
        """
        with self.lock:
            self.switchboard.carry_out()
            chain_ids = self.follow_logs()  # the escrow's new events, once: no read a deal
            try:
                for row in self.agenda.due(chain_ids, self._txs.settled()):
                    try:
                        self._advance(row)
                    except Exception as err:  # one deal's trouble spares the rest
                        log.warning("deal %s not advanced this tick: %s", row["id"], err)
                        self.agenda.plan(row, self.clock.now())  # again at the next pass
                    else:
                        self.agenda.plan(row, self._next_visit(row))
            finally:
                self.agenda.finished()

    def _next_visit(self, row: dict[str, Any]) -> float | None:
        """When to visit a deal again if nothing touches it (None: not before something
        does): one opening deal waiting on a watched change, a delivering or paused one at
        its faults' next timer; the rest (closing, retrying) at the next pass."""
        if row["status"] == DealState.OPENING and row["id"] in self.opening.waiting:
            return None
        self.opening.waiting.discard(row["id"])
        if row["status"] in (DealState.ACTIVE, DealState.PAUSED):
            return self.faults.next_due(row)
        return self.clock.now()

    def _set_status(self, row: dict[str, Any], status: str, **fields: Any) -> bool:
        """Write a deal's new status (and fields) decided from row, unless a request moved
        the deal meanwhile (a Close connection while the pass was in a chain call); whether
        it was written."""
        with self._guard:
            now = self.store.deal(row["id"])
            if now is None or now["status"] != row["status"]:
                log.info("deal %s: %s not written, it is %s now", row["id"], status,
                         now and now["status"])
                return False
            self.store.update_deal(row["id"], status=status, **fields)
            self.agenda.moved(row["id"])
            return True

    # -- delivery and the chain's view -----------------------------------------------------

    def _publish(self, deal_id: int) -> None:
        """A deal's view changed: tell the pages, and visit it (and its buyer's) next pass."""
        self.agenda.moved(deal_id)
        self.hub.publish("deal_updated", self.deal(deal_id))

    def _delivered(self, row: dict[str, Any]) -> int:
        """Wh delivered so far by the buyer's meter (stored and published when it moved): its
        signed counter, what the escrow pays on (a plain reading is for display only)."""
        reading = self.reports.signed_of(row["buyer"])
        if reading is None or row["baseline_wh"] is None:
            return row["delivered_wh"]
        measured = int(reading.wh_in - row["baseline_wh"])
        delivered = max(row["delivered_wh"], min(row["energy_wh"], measured))
        if delivered != row["delivered_wh"]:
            self.store.update_deal(row["id"], delivered_wh=delivered)
            row["delivered_wh"] = delivered
            self._publish(row["id"])
        return delivered

    def follow_logs(self) -> set[int]:
        """Read the escrow's new deal events once (the `settlement` cursor) into the store;
        after a rewind, put each deal the chain forgot part of back where the chain has it.
        The escrow ids of the deals the events (or the rewind) touched."""
        try:
            found = self.chain.follow()
        except Exception as err:  # the chain is away: the cursor stays, the next pass reads
            log.warning("escrow events not read this pass: %s", err)
            return set()
        for chain_id in self.chain.rewound:
            row = self.store.deal_by_chain_id(chain_id)
            if row is not None:
                self._recheck(row)
        return deal_ids(found.logs) | set(self.chain.rewound)

    def _recheck(self, row: dict[str, Any]) -> None:
        """A deal whose events after the head are gone: count from what the escrow still has
        (reports are sent again from there); one it never opened goes back to opening."""
        did, known = row["id"], self.chain.mirror.deal(row["chain_deal_id"])
        if known is None:
            for action in ("open", "report", "close", "fault", "expire"):
                self._txs.pop((did, action), None)
            if not self._set_status(row, DealState.OPENING, chain_deal_id=None,
                                    expires_at=None, baseline_wh=None, reported_wh=0,
                                    error="the chain went back before this deal opened: "
                                          "opening it again"):
                return
        elif row["status"] in (DealState.CLOSED, DealState.FAILED) \
                and known["status"] != DealStatus.CLOSED:
            log.warning("deal %s is %s here but open on chain after the rewind: its close is"
                        " the resent transactions' to repeat", did, row["status"])
            return
        else:
            self._txs.pop((did, "report"), None)
            self.store.update_deal(did, reported_wh=int(known["deliveredWh"]),
                                   paid_wei=int(known["paidWei"]))
        log.warning("deal %s re-checked after the chain went back", did)
        self._publish(did)

    def _follow_chain(self, row: dict[str, Any]) -> None:
        """Mirror the escrow's view of the deal: payments so far, and whether it closed (from
        the events follow_logs applied: no chain read here)."""
        chain = self.chain.deal(row["chain_deal_id"])
        paid = int(chain["paidWei"])
        if paid != row["paid_wei"]:
            self.store.update_deal(row["id"], paid_wei=paid)
        if chain["status"] != DealStatus.CLOSED:
            if paid != row["paid_wei"]:
                self._publish(row["id"])
            return
        self.switchboard.relays(row, on=False)
        self.switchboard.budget(row, None)
        self.reports.closing.pop(row["id"], None)
        self.store.update_deal(
            row["id"],
            status=DealState.CLOSED,
            closed=self.clock.now(),
            delivered_wh=int(chain["deliveredWh"]),
            close_reason=CLOSE_REASONS.get(int(chain["closeReason"]), "closed"),
            refunded_wei=int(chain["lockedWei"]) - paid,
        )
        self._publish(row["id"])

    # -- delivering and closing ------------------------------------------------------------

    def _advance(self, row: dict[str, Any]) -> None:
        did = row["id"]
        if row["status"] == DealState.OPENING:
            self.opening.advance(row)
            return
        if row["status"] == DealState.CLOSING:
            record = self._txs.get((did, "close"))
            if record is not None and record.status == "failed":
                # The relays stay open; the buyer can press Close connection again. Told so
                # here too: the request's worker opened them, and the settlement's switch-back
                # must know they are open on purpose (review2's F1).
                self.switchboard.relays(row, on=False)
                if self._set_status(row, DealState.ACTIVE, error=record.error):
                    del self._txs[(did, "close")]
                    self.reports.closing.pop(did, None)
            else:
                self.reports.finish_close(row)
        if row["status"] in (DealState.ACTIVE, DealState.PAUSED) and self.faults.check(row):
            self._follow_chain(row)
            return
        if row["status"] == DealState.ACTIVE:
            delivered = self._delivered(row)
            if delivered >= row["energy_wh"]:
                self.switchboard.relays(row, on=False)
            self.reports.step(row)
        self._follow_chain(row)

    def _closable(self, party: str, deal_id: object) -> dict[str, Any]:
        """A deal the party may close now, or NotAllowed/DealNotActive."""
        row = self._deal_row(deal_id)
        if party not in (row["buyer"], row["seller"]):
            raise NotAllowed("only the buyer or the seller can close this deal")
        inflight = self._txs.get((row["id"], "close"))
        waiting = row["status"] == DealState.CLOSING and (
            inflight is None or inflight.status == "failed")
        # A paused deal (a meter away, the bus in doubt) is its parties' to end as well.
        if row["status"] not in (DealState.ACTIVE, DealState.PAUSED) and not waiting:
            raise DealNotActive(f"deal {row['id']} is {row['status']}, not delivering")
        return row

    def _check_close(self, party: str, row: dict[str, Any], call: SignedCall) -> None:
        """The signed transaction is the party's closeDeal of this very deal."""
        signed.check_signed_by(call, party, self.ledger.bid_domain()[0], "close")
        called = self.ledger.function_of(call)
        if called != ("EnergyEscrow", "closeDeal", (row["chain_deal_id"],)):
            raise InvalidInput(f"the signed close must be closeDeal({row['chain_deal_id']}) "
                               "on the escrow")

    def _deal_row(self, deal_id: object) -> dict[str, Any]:
        """A deal's stored row from an id a person gave, or InvalidInput/NotFound."""
        return rules.stored(self.store.deal, deal_id, "deal")
