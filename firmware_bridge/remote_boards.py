"""Boards that bridges serve, as every portal worker sees them, whichever worker a bridge is
connected to.

A bridge's connection reaches one worker (the peer is its Socket.IO sid there): that worker
checks its credential and hello and publishes what it says on the board bus; every worker
(that one too, by the same functions) applies claims, readings and goodbyes to its own view.
Commands go to the bridge's peer through a transport the web layer gives (Socket.IO; with a
message queue it reaches a peer on any worker), so this module needs no web framework.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

from eth_utils import to_checksum_address

from firmware_bridge.board_bus import BoardBus, LocalBus
from firmware_bridge.board_sender import BoardSender
from firmware_bridge.boards import Boards
from firmware_bridge.claims import (
    KINDS,
    MAX_BOARDS,
    MAX_SKEW_S,
    MAX_TIME_FACTOR,
    AnnouncedBoard,
    announced,
    reading_from_json,
    signed_refusal,
)
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.reading_json import went_back
from firmware_bridge.remote_nodes import RemoteNodes
from firmware_bridge.signing import ReadingDomain, SignedReading

__all__ = ["KINDS", "MAX_BOARDS", "MAX_SKEW_S", "MAX_TIME_FACTOR", "AnnouncedBoard",
           "RemoteBoards", "Transport", "reading_from_json"]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0
ALIVE_S = 1.0  # how often a worker repeats the claims of the bridges connected to it
STALE_S = 3 * ALIVE_S  # a claim another worker stopped repeating this long ago is offline

Transport = Callable[[str, dict[str, Any], float], Any]
"""(peer, command, timeout s) -> the bridge's answer; raises BridgeError (or TimeoutError) when
none came."""


class RemoteBoards(Boards):
    """Which bridge connection (peer, on any worker) serves which board, and what it reported."""

    def __init__(
        self, allowed: Collection[str], transport: Transport, timeout: float = COMMAND_TIMEOUT_S,
        *, bus: BoardBus | None = None, worker: str | None = None,
    ):
        self.allowed = set(allowed)  # board ids the portal expects from bridges
        self.transport = transport
        self.timeout = timeout
        self.bus = bus or LocalBus()
        self.worker = worker or uuid.uuid4().hex[:12]  # this worker, as the bus names it
        self.sid: dict[str, str] = {}  # board id -> the connection (peer) of its bridge
        self.latest: dict[str, Reading] = {}
        self.signed: dict[str, SignedReading] = {}  # board id -> its meter's latest signed
        self.boards: dict[str, AnnouncedBoard] = {}  # board id -> what its bridge claimed
        self.since: dict[str, float] = {}  # board id -> when its current claim was made
        self.bridge_of: dict[str, str] = {}  # local peer -> the registered bridge it proved
        self.registered: dict[str, dict[str, str]] = {}  # local peer -> board id -> meter
        self.factors: dict[str, dict[str, float]] = {}  # local peer -> board id -> time factor
        self.claims: dict[str, dict[str, Any]] = {}  # local peer -> its claim, repeated
        self.heard: dict[str, float] = {}  # another worker's peer -> when its claim came last
        self.domain: ReadingDomain | None = None
        self.lock = threading.Lock()
        self._listeners: list[Callable[[AnnouncedBoard], None]] = []
        self._claim_listeners: list[Callable[[AnnouncedBoard], None]] = []
        self._senders: dict[str, BoardSender] = {}  # board id -> its relay/budget commands
        self.bus.subscribe(self._on_bus)
        self.nodes = RemoteNodes(self.bus, transport, self.worker)  # bridges' own chain nodes

    def subscribe(self, listener: Callable[[AnnouncedBoard], None]) -> None:
        """Call listener(board) whenever a bridge connected here claims a registered board."""
        self._listeners.append(listener)

    def subscribe_claims(self, listener: Callable[[AnnouncedBoard], None]) -> None:
        """Call listener(board) for every claim this worker applies, whichever worker the
        bridge is connected to, repeated ones included (about every ALIVE_S): so each worker
        seats a board once its meter is enrolled. Runs on the bus's thread: keep it short."""
        self._claim_listeners.append(listener)

    def set_reading_domain(self, domain: ReadingDomain) -> None:
        """The chain and token signed readings must be for; others are dropped."""
        self.domain = domain

    # -- what bridges connected to this worker say -----------------------------------------

    def admit(
        self, peer: str, bridge_id: str, registered: Mapping[str, str],
        time_factors: Mapping[str, float] | None = None,
    ) -> None:
        """A bridge proved its credential on connection peer: it may claim these boards
        (board id -> registered meter address), and no others, each at the time factor the
        admin registered for it (board id -> factor; 1, real time, when not given)."""
        factors = time_factors or {}
        with self.lock:
            self.bridge_of[peer] = bridge_id
            self.registered[peer] = {board: to_checksum_address(meter)
                                     for board, meter in registered.items()}
            self.factors[peer] = {board: float(factors.get(board, 1)) for board in registered}
            self.allowed.update(registered)

    def announce(self, peer: str, offered: Any) -> list[AnnouncedBoard]:
        """A bridge's hello: it serves these boards; BridgeError says why they are refused.

        Only boards registered to this bridge, each with its registered meter, are claimed;
        a hello funds nothing and enrolls nothing (the listeners ask the owner's consent).
        """
        if not isinstance(offered, list) or not offered or len(offered) > MAX_BOARDS:
            raise BridgeError(f"hello needs a list of 1..{MAX_BOARDS} boards")
        with self.lock:
            registered = self.registered.get(peer)
            if registered is None:
                raise BridgeError("this connection is not an admitted bridge")
            boards = [announced(board, registered, self.factors[peer]) for board in offered]
            mine = self.bridge_of[peer]
            # Registered boards are this bridge's alone: another peer holding one is this
            # bridge's own earlier connection (a reconnect), which gives way.
            claim = self.claims[peer] = {
                "t": "claim", "w": self.worker, "peer": peer, "bridge": mine,
                "since": time.time(), "boards": [b.to_json() for b in boards]}
        self._send(claim)
        log.info("bridge %s claimed boards %s", mine, [b.board_id for b in boards])
        _tell(self._listeners, boards)
        return boards

    def report(self, peer: str, data: Any) -> None:
        """A reading a bridge connected here sent unasked: every worker checks and keeps it
        when it is that bridge's board's (see _apply_reading)."""
        board_id = data.get("board_id") if isinstance(data, dict) else None
        with self.lock:
            claim = self.claims.get(peer)
            ours = claim is not None and any(b["board_id"] == board_id for b in claim["boards"])
        if ours:  # another peer's (or no) board: not worth a message to every worker
            self._send({"t": "reading", "w": self.worker, "peer": peer, "data": data})

    def disconnect(self, peer: str) -> None:
        """A bridge went away: its boards are offline until it announces them again."""
        with self.lock:
            self.bridge_of.pop(peer, None)
            self.registered.pop(peer, None)
            self.factors.pop(peer, None)
            self.claims.pop(peer, None)
        self._send({"t": "gone", "w": self.worker, "peer": peer})

    def forget(self, board_ids: Collection[str]) -> None:
        """Boards whose bridge was revoked: offline at once on every worker, and what they
        reported is dropped, so a board registered again (perhaps with a new meter) starts
        afresh."""
        self._send({"t": "forget", "w": self.worker, "boards": list(board_ids)})

    def refresh(self) -> None:
        """Repeat the claims of the bridges connected here (every ALIVE_S), so every worker,
        one started later included, knows them, and one that stops hearing them (this
        worker died) takes their boards as offline."""
        with self.lock:
            claims = list(self.claims.values())
            # Connections of workers long silent that no board points at any more.
            live, now = set(self.sid.values()), time.monotonic()
            for peer in [p for p, t in self.heard.items() if now - t > 10 * STALE_S]:
                if peer not in live:
                    del self.heard[peer]
        for claim in claims:
            self.bus.publish(claim)

    def admitted(self, peer: str) -> bool:
        """Whether a connection here is a bridge whose credential still stands."""
        with self.lock:
            return peer in self.bridge_of

    def peers_of(self, bridge_id: str) -> list[str]:
        """The connections a bridge holds here now (to close when its credential is revoked)."""
        with self.lock:
            return [peer for peer, bridge in self.bridge_of.items() if bridge == bridge_id]

    # -- what every worker applies ---------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        """Apply a message here at once, then tell the other workers."""
        self._apply(message)
        self.bus.publish(message)

    def _on_bus(self, message: dict[str, Any]) -> None:
        if message.get("w") != self.worker:  # ours was applied when sent
            self._apply(message)

    def _apply(self, message: dict[str, Any]) -> None:
        kind, peer = message.get("t"), message.get("peer")
        if kind == "claim" and isinstance(peer, str):
            self._apply_claim(peer, message)
        elif kind == "reading" and isinstance(peer, str):
            self._apply_reading(peer, message.get("data"))
        elif kind == "gone" and isinstance(peer, str):
            self._apply_gone(peer)
        elif kind == "forget" and isinstance(message.get("boards"), list):
            self._apply_forget([b for b in message["boards"] if isinstance(b, str)])

    def _apply_claim(self, peer: str, claim: dict[str, Any]) -> None:
        """A bridge serves these boards through peer, as of claim["since"]; an older claim
        (a worker still repeating a connection the bridge has replaced) changes nothing."""
        boards = [AnnouncedBoard.from_json(b) for b in claim.get("boards") or []]
        since = float(claim.get("since") or 0.0)
        applied = []
        with self.lock:
            if claim.get("w") != self.worker:
                self.heard[peer] = time.monotonic()
            for board in boards:
                if self.since.get(board.board_id, 0.0) > since:
                    continue
                applied.append(board)
                self.sid[board.board_id] = peer
                self.since[board.board_id] = since
                self.allowed.add(board.board_id)
                before = self.boards.get(board.board_id)
                if before is None or before.meter != board.meter:
                    # What is cached (if anything) is another meter's: not comparable.
                    self._drop_readings(board.board_id)
                self.boards[board.board_id] = board
        _tell(self._claim_listeners, applied)

    def _apply_reading(self, peer: str, data: Any) -> None:
        """Keep a reading only when it is its peer's board's, every field checks out and its
        counters did not go back (else refused, the last kept)."""
        board_id = data.get("board_id") if isinstance(data, dict) else None
        if not isinstance(board_id, str) or self.sid.get(board_id) != peer:
            return
        try:
            reading = reading_from_json(data.get("reading"))
        except BridgeError as err:
            log.warning("reading of %s refused: %s", board_id, err)
            return
        with self.lock:
            why = went_back(self.latest.get(board_id), reading)
            if why is None:
                self.latest[board_id] = reading
        if why is not None:
            log.warning("reading of %s refused: %s", board_id, why)
            return
        if data.get("signed") is not None:
            self._keep_signed(board_id, data["signed"])

    def _keep_signed(self, board_id: str, data: Any) -> None:
        try:
            signed = SignedReading.from_json(data)
        except BridgeError as err:
            log.warning("signed reading of %s refused: %s", board_id, err)
            return
        with self.lock:
            board, last = self.boards.get(board_id), self.signed.get(board_id)
        why = signed_refusal(signed, board, last, self.domain, time.time())
        if why is not None:
            log.warning("signed reading of %s refused: %s", board_id, why)
            return
        with self.lock:
            self.signed[board_id] = signed

    def _apply_gone(self, peer: str) -> None:
        with self.lock:
            self.heard.pop(peer, None)
            for board_id in [b for b, sid in self.sid.items() if sid == peer]:
                del self.sid[board_id]
                log.warning("board %s went offline with its bridge", board_id)

    def _apply_forget(self, board_ids: list[str]) -> None:
        with self.lock:
            # A connection here that holds one of them is the revoked bridge's, wherever the
            # revoke was made: no longer repeated or admitted (the web layer closes it).
            closing = [peer for peer, claim in self.claims.items()
                       if any(b["board_id"] in board_ids for b in claim["boards"])]
            for peer in closing:
                for held in (self.claims, self.bridge_of, self.registered, self.factors):
                    held.pop(peer, None)
            for board_id in board_ids:
                self.sid.pop(board_id, None)  # its bridge's reports are ignored from now on
                self.boards.pop(board_id, None)
                self.since.pop(board_id, None)
                self._drop_readings(board_id)

    def _drop_readings(self, board_id: str) -> None:
        plain = self.latest.pop(board_id, None)
        signed = self.signed.pop(board_id, None)
        if plain is not None or signed is not None:
            log.info("readings cached for board %s dropped", board_id)

    def _peer(self, board_id: str) -> str | None:
        """The board's bridge connection if it is live: connected here, or repeated by its
        worker within STALE_S (call holding the lock)."""
        peer = self.sid.get(board_id)
        if peer is None or peer in self.claims:
            return peer
        heard = self.heard.get(peer)
        return peer if heard is not None and time.monotonic() - heard < STALE_S else None

    # -- what the portal asks --------------------------------------------------------------

    def command(self, board_id: str, action: str, **data: Any) -> dict[str, Any]:
        """Run a command on the board's bridge and return its answer; BridgeError if it fails.

        It waits up to the timeout for the bridge: never call it holding the market's lock
        (relays and budgets go through the board's sender instead).
        """
        with self.lock:
            peer = self._peer(board_id)
        if peer is None:
            raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
        try:
            answer = self.transport(
                peer, {"board_id": board_id, "action": action, **data}, self.timeout
            )
        except BridgeError:
            raise
        except TimeoutError as err:
            raise BridgeError(f"the bridge of {board_id} did not answer {action}") from err
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise BridgeError(f"the bridge of {board_id} refused {action}: {error}")
        return answer

    def expect(self, board_id: str) -> None:
        """A board a bridge will serve from now on (a participant the admin seated)."""
        with self.lock:
            self.allowed.add(board_id)

    def serves(self, board_id: str) -> bool:
        """Whether a bridge is expected to serve this board."""
        return board_id in self.allowed

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Have the board's bridge close (on) or open a relay; returns once it is queued.

        The board's sender delivers it (the state asked last wins), so a bridge that never
        answers holds up no caller; BridgeError now only when the bridge is not connected.
        """
        self._queue(board_id, "set_relay", relay, on=on)

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Have the board's bridge give a relay a Wh budget; queued as set_relay is."""
        self._queue(board_id, "set_budget", relay, wh=wh)

    def sent(self, board_id: str) -> bool:
        """Whether every relay and budget command for the board was answered by its bridge."""
        with self.lock:
            sender = self._senders.get(board_id)
        return sender is None or sender.idle()

    def _queue(self, board_id: str, action: str, relay: int, **data: Any) -> None:
        with self.lock:
            if self._peer(board_id) is None:
                raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
            sender = self._senders.get(board_id)
            if sender is None:
                sender = self._senders[board_id] = BoardSender(
                    board_id, lambda c, b=board_id: self.command(b, **c))
        sender.put((action, relay), {"action": action, "relay": relay, **data})

    def online(self, board_id: str) -> bool:
        """Whether the board's bridge is connected (to this worker or a live other one) and
        its meter answers (its latest reading is no METER=FAULT one)."""
        with self.lock:
            if self._peer(board_id) is None:
                return False
        latest = self.latest.get(board_id)
        return latest is None or latest.meter == "OK"

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading its bridge sent, without asking."""
        return self.latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """The latest reading its bridge sent (it reports several a second): asking it would
        wait on a bridge that may never answer. BridgeError when offline or none came yet."""
        with self.lock:
            online = self._peer(board_id) is not None  # connected; a dead meter still reads
        reading = self.latest.get(board_id)
        if not online or reading is None:
            raise BridgeError(f"board {board_id} has no reading: its bridge is "
                              + ("silent" if online else "not connected"))
        return reading

    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The latest reading its registered meter signed, as its bridge sent it (no I/O)."""
        return self.signed.get(board_id)


def _tell(listeners: list[Callable[[AnnouncedBoard], None]], boards: list[AnnouncedBoard]) -> None:
    """Call every listener on every board; one listener's failure loses neither the claim
    nor the others' calls."""
    for board in boards:
        for listener in list(listeners):
            try:
                listener(board)
            except Exception:
                log.exception("a listener failed on board %s", board.board_id)
