"""Meter enrollment: each participant's meter enrolled with the owner's signed consent, then seated.

Nothing here funds a meter (meter keys sign readings, never transactions) and no bridge's
hello enrolls anything: a registered bridge claiming its board only asks the owner's consent.
The rated power follows the board's own clock: the participant's rating times its time factor
(1 for a real board, the emulator's speed for an emulated one). A remote board's factor is the
one the admin registered (its hello may only repeat it); this machine's boards declare theirs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from contracts.bindings import sign_typed
from firmware_bridge.remote_boards import AnnouncedBoard, RemoteBoards
from geth_private.keystore import MachineKeys
from geth_private.records import TxRecord, TxStatus
from marketplace.errors import NotFound
from marketplace.ledger import CONSUMER, PRODUCER, Ledger
from marketplace.market import Market
from web.runtime import consent
from web.runtime.accounts import AccountDirectory

log = logging.getLogger(__name__)

RETRY_S = 5.0  # a demo owner's consent still pending is sent again after this, then doubling
RETRY_MAX_S = 300.0
CLAIM_STALE_S = 120.0  # a consent taken for sending and not sent after this was left behind


def rating_w(spec: Mapping[str, Any], config: Mapping[str, Any]) -> float:
    """A participant's rating in its own board's time: PV peak or load, in W."""
    if spec["role"] == "producer":
        return float(spec.get("pv_peak_w") or config["PV_PEAK_W"])
    return float(spec.get("load_w") or config["LOAD_W"])


def rated_power_w(spec: Mapping[str, Any], config: Mapping[str, Any], time_factor: float) -> int:
    """The power a meter is enrolled for, in chain time: the rating times the board's time
    factor (an emulated hour passes time_factor times faster than the chain's)."""
    return max(1, int(rating_w(spec, config) * time_factor))


class MeterEnrollment:
    """Asks each meter's owner to consent, sends the enrollment, seats the owner once mined."""

    def __init__(
        self, ledger: Ledger, market: Market, accounts: AccountDirectory,
        participants: Sequence[Mapping[str, Any]], config: Mapping[str, Any], keys: MachineKeys,
        remote: RemoteBoards, local_boards: Callable[[], Mapping[str, Any]],
    ):
        self.ledger = ledger
        self.market = market
        self.store = market.store
        self.accounts = accounts
        self.participants = list(participants)
        self.config = config
        self.remote = remote
        self.local_boards = local_boards  # board id -> BoardInfo of this machine's boards
        self.keys = keys  # this machine's meter keys: the same ones its bridge signs with
        self.demo_keys: dict[str, Any] = {}  # owner -> its key, for accounts the demo seats
        self._seated: dict[str, str] = {}  # board id -> the meter it was seated with here
        self._sent: dict[str, tuple[str, str]] = {}  # enrollment tx hash -> (owner, meter)
        self._retries: dict[tuple[str, str], tuple[int, float]] = {}  # -> (tries, next at)
        self._lock = threading.Lock()

    # -- the owner's consent ---------------------------------------------------------------

    def request(self, owner: str, meter: str, board_id: str, role: str, rated: int) -> None:
        """Ask an owner to consent to a meter's enrollment (signed at once for a demo key)."""
        kind = PRODUCER if role == "producer" else CONSUMER
        self.store.request_consent(owner, meter, board_id, kind, rated, time.time())
        row = self.store.consent(owner, meter)
        key = self.demo_keys.get(owner)
        if key is not None and row["status"] == "pending":  # not one already on its way
            self._sign_and_submit(owner, row, key)

    def retry(self) -> None:
        """One pass of the enrollment loop: each consent still pending of an owner whose key
        this portal holds (the demo's) is signed and sent again. Its first send may have
        been refused (the chain away at a bridge's hello) or its enrollment failed on chain
        (reverted, or forgotten by a chain that went back); the owner then sat on no board
        for good, since nothing asks again for a board already claimed. A person's own
        consent waits for the person (their wallet lists it). Each retry waits twice as long
        as the one before (RETRY_S up to RETRY_MAX_S): a refusal that lasts costs little."""
        now = time.monotonic()
        try:
            # A send records itself within the node's timeout (30 s): a claim older than
            # CLAIM_STALE_S was its worker's last act, and no owner would see it again.
            if self.store.release_stale_claims(time.time() - CLAIM_STALE_S):
                log.warning("consents taken for sending by a worker that stopped are pending "
                            "again")
        except Exception as err:  # the store away: the next pass looks again
            log.warning("enrollment pass skipped: %s", err)
            return
        for owner, key in list(self.demo_keys.items()):
            try:
                rows = self.store.consents(owner)
            except Exception as err:  # the store away: the next pass reads them again
                log.warning("pending consents of %s not read: %s", owner, err)
                return
            for row in rows:
                tried = self._retries.get((owner, row["meter"]))
                if tried is not None and now < tried[1]:
                    continue
                count = 1 if tried is None else tried[0] + 1
                wait = min(RETRY_S * 2 ** (count - 1), RETRY_MAX_S)
                self._retries[(owner, row["meter"])] = (count, now + wait)
                try:
                    if not self._still_asked(owner, row):
                        continue  # its board has another owner or meter now: never sent
                    if self._mined_after_all(owner, row):
                        continue
                    self._sign_and_submit(owner, row, key)
                except Exception as err:  # the next pass tries again, later
                    log.warning("enrollment of meter %s for %s not sent (try %d; again in "
                                "%.0f s): %s", row["meter"], owner, count, wait, err)
                    continue
                log.info("enrollment of meter %s for %s sent again (try %d)", row["meter"],
                         owner, count)

    def _sign_and_submit(self, owner: str, row: Mapping[str, Any], key: Any) -> None:
        """A demo owner's consent, signed with the key this portal holds for it, and sent."""
        deadline = int(time.time()) + consent.CONSENT_TTL_S
        signature = sign_typed(key, self._typed(row, deadline))
        self.submit(owner, row["meter"], deadline, "0x" + signature.hex())

    def pending(self, owner: str) -> list[dict[str, Any]]:
        """An owner's consent requests waiting for a signature, each with its typed data."""
        deadline = int(time.time()) + consent.CONSENT_TTL_S
        return [{"meter": row["meter"], "board_id": row["board_id"],
                 "kind": "producer" if row["kind"] == PRODUCER else "consumer",
                 "rated_power_w": row["rated_power_w"], "deadline": deadline,
                 "typed_data": self._typed(row, deadline)}
                for row in self.store.consents(owner)]

    def submit(self, owner: str, meter: str, deadline: Any, signature: Any) -> dict[str, Any]:
        """The owner's signed consent: checked to be the owner's, then enrollMeter is sent."""
        row = self.store.consent(owner, meter)
        if row is None or row["status"] != "pending":
            raise NotFound(f"no enrollment of meter {meter} waits for your consent")
        deadline = consent.check_deadline(deadline, time.time())
        raw = consent.check_signature(self._typed(row, deadline), signature, owner)
        if not self.store.claim_consent(owner, meter, time.time()):  # another send took it
            raise NotFound(f"the enrollment of meter {meter} is being sent already")
        try:
            record = self.ledger.enroll_meter_async(meter, owner, int(row["kind"]),
                                                    int(row["rated_power_w"]), deadline, raw)
        except BaseException:
            self.store.set_consent_status(owner, meter, "pending")  # not sent: ask again
            raise
        with self._lock:
            self._sent[record.tx_hash] = (owner, meter)
        self.store.set_consent_status(owner, meter, "sent", record.tx_hash)
        self.on_transaction(record)  # it may have been mined already
        return record.public()

    def on_transaction(self, record: TxRecord) -> None:
        """A transaction changed status: an enrollment mined seats its owner."""
        with self._lock:
            sent = self._sent.get(record.tx_hash)
            if sent is None or record.status not in (TxStatus.MINED, TxStatus.FAILED):
                return
            del self._sent[record.tx_hash]
        owner, meter = sent
        if record.status == TxStatus.FAILED:
            log.error("enrollment of meter %s for %s failed: %s", meter, owner, record.error)
            self.store.consent_failed(owner, meter, record.tx_hash)  # retry() sends it again
            return
        self._retries.pop((owner, meter), None)  # a later refusal starts from RETRY_S again
        self.store.set_consent_status(owner, meter, "enrolled", record.tx_hash)
        self._seat_enrolled(owner, meter)

    def _typed(self, row: Mapping[str, Any], deadline: int) -> dict[str, Any]:
        token = self.ledger.addresses()["EnergyToken"]
        return consent.typed_data(self.ledger.chain_id(), token, row, deadline)

    # -- boards that come online -----------------------------------------------------------

    def add_local(self, spec: Mapping[str, Any], owner: str, key: Any) -> None:
        """A board of this machine seated for a demo owner: its meter key (made on first use)
        enrolled with the consent the owner's own key signs, at the rating times the time
        factor its emulated HELLO declared."""
        meter = self.keys.get(spec["board"])
        info = self.local_boards().get(spec["board"])
        factor = getattr(info, "time_factor", None) or self.config["EMULATOR_SPEED"]
        rated = rated_power_w(spec, self.config, float(factor))
        kind = PRODUCER if spec["role"] == "producer" else CONSUMER
        ceiling = int(self.config["MAX_RATED_POWER_W"])
        if rated > ceiling:  # the token would revert InvalidEnrollment: say what to change
            raise ValueError(
                f"board {spec['board']}: its rating × time factor {factor:g} is {rated} W, "
                f"above MAX_RATED_POWER_W = {ceiling} W; lower the rating or the emulator "
                "speed, or raise MAX_RATED_POWER_W before the contracts are deployed")
        if not self._enrolled_as(meter.address, owner, kind, rated):
            self.store.request_consent(owner, meter.address, spec["board"], kind, rated,
                                       time.time())
            deadline = int(time.time()) + consent.CONSENT_TTL_S
            row = self.store.consent(owner, meter.address)
            signature = sign_typed(key, self._typed(row, deadline))
            self.ledger.enroll_meter(meter.address, owner, kind, rated, deadline, signature)
        self.store.set_consent_status(owner, meter.address, "enrolled")
        self.market.add_participant(spec["name"], owner, spec["role"], spec["board"],
                                    meter.address)

    def adopt_remote(self, board: AnnouncedBoard) -> None:
        """A registered bridge claimed a board: seat its owner if its meter is enrolled so
        already, else ask the owner's consent (the seat follows the mined enrollment). The
        board's time factor is the registered one: RemoteBoards refuses a hello naming
        another."""
        seat = self._seat_of(board.board_id)
        if seat is None or seat["role"] != board.kind:
            log.error("remote board %s (%s) matches no participant", board.board_id, board.kind)
            return
        rated = rated_power_w(seat, self.config, board.time_factor)
        kind = PRODUCER if seat["role"] == "producer" else CONSUMER
        if self._enrolled_as(board.meter, seat["address"], kind, rated):
            self._seat(seat, board.meter)
            return
        log.info("remote board %s of %s: asking its owner to consent to meter %s at %d W",
                 board.board_id, seat["name"], board.meter, rated)
        self.request(seat["address"], board.meter, board.board_id, seat["role"], rated)

    def seat_claimed(self, board: AnnouncedBoard) -> None:
        """A bridge's claim reached this worker (connected here or to another): seat the
        board here too once its meter is enrolled, so whichever worker settles knows it.
        The consent is asked by the worker the bridge is connected to (adopt_remote)."""
        if self._seated.get(board.board_id) == board.meter:
            return
        seat = self._seat_of(board.board_id)
        if seat is None or seat["role"] != board.kind or not seat.get("address"):
            return
        rated = rated_power_w(seat, self.config, board.time_factor)
        kind = PRODUCER if seat["role"] == "producer" else CONSUMER
        if self._enrolled_as(board.meter, seat["address"], kind, rated):
            self._seat(seat, board.meter)

    def seat_on_board(
        self, owner: str, board_id: str, meter: str, time_factor: float = 1.0
    ) -> None:
        """The admin seated an owner on a registered board: ask the owner's consent now, at
        the rating times the board's registered time factor."""
        seat = self._seat_of(board_id)
        if seat is not None and seat["address"] == owner:
            rated = rated_power_w(seat, self.config, time_factor)
            self.request(owner, meter, board_id, seat["role"], rated)

    def _seat_of(self, board_id: str) -> dict[str, Any] | None:
        """Who a board measures: a configured participant, or a person the admin seated."""
        spec = next((p for p in self.participants if p["board"] == board_id), None)
        if spec is not None:
            address = self.accounts.names().get(spec["name"])
            return {**spec, "address": address} if address else None
        seated = next((p for p in self.store.participants() if p["board_id"] == board_id), None)
        if seated is None:
            return None
        return {"name": seated["name"], "role": seated["role"], "board": board_id,
                "address": seated["address"]}

    def _still_asked(self, owner: str, row: Mapping[str, Any]) -> bool:
        """Whether a pending consent is still what its board needs: the board seats this
        owner and, served by a registered bridge, is registered with this meter (not one the
        admin replaced: enrolled and seated, it would unseat the board's meter of now)."""
        seat = self._seat_of(row["board_id"])
        if seat is None or seat["address"] != owner:
            return False
        if row["board_id"] in self.local_boards():
            return True
        return any(b["board_id"] == row["board_id"] and b["meter"].lower() == row["meter"].lower()
                   for bridge in self.store.bridges() for b in bridge["boards"])

    def _mined_after_all(self, owner: str, row: Mapping[str, Any]) -> bool:
        """Whether a pending consent's meter is enrolled on chain as asked already (another
        worker's send mined, or one whose record failed): marked enrolled and seated."""
        if not self._enrolled_as(row["meter"], owner, int(row["kind"]),
                                 int(row["rated_power_w"])):
            return False
        self.store.set_consent_status(owner, row["meter"], "enrolled")
        self._seat_enrolled(owner, row["meter"])
        return True

    def _enrolled_as(self, meter: str, owner: str, kind: int, rated: int) -> bool:
        entry = self.ledger.meter_of(meter)
        return (entry["owner"], entry["kind"], entry["rated_power_w"]) == (owner, kind, rated)

    def _seat_enrolled(self, owner: str, meter: str) -> None:
        row = self.store.consent(owner, meter)
        seat = self._seat_of(row["board_id"]) if row else None
        if seat is None or seat["address"] != owner:
            log.error("meter %s enrolled for %s, who sits on no board of it", meter, owner)
            return
        self._seat(seat, meter)

    def _seat(self, seat: Mapping[str, Any], meter: str) -> None:
        board_id = seat["board"]
        self.market.add_participant(seat["name"], seat["address"], seat["role"], board_id, meter)
        self._seated[board_id] = meter
        log.info("board %s of %s is seated, meter %s", board_id, seat["name"], meter)
