"""Boards a bridge on another machine serves, as the portal sees them, and their meter keys.

The portal reaches each remote bridge through a transport it is given (Socket.IO in the web
layer), so this module needs no web framework: it keeps which bridge serves which board and
what each board last reported, and turns commands and answers into Boards calls.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from firmware_bridge.board_sender import BoardSender
from firmware_bridge.boards import Boards
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.reading_json import parse_reading, went_back
from firmware_bridge.signing import ReadingDomain, SignedReading

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0
MAX_BOARDS = 64  # boards one hello may claim
MAX_TIME_FACTOR = 10_000  # the fastest emulated clock a board may run at
MAX_SKEW_S = 60  # how far past the portal's clock a signed reading may be dated
KINDS = ("producer", "consumer")

Transport = Callable[[str, dict[str, Any], float], Any]
"""(peer, command, timeout s) -> the bridge's answer; raises BridgeError (or TimeoutError) when
none came."""


class RemoteBoards(Boards):
    """Which remote bridge (peer) serves which board, and what its boards last reported."""

    def __init__(
        self, allowed: Collection[str], transport: Transport, timeout: float = COMMAND_TIMEOUT_S
    ):
        self.allowed = set(allowed)  # board ids the portal expects from remote bridges
        self.transport = transport
        self.timeout = timeout
        self.sid: dict[str, str] = {}  # board id -> the connection (peer) of its bridge
        self.latest: dict[str, Reading] = {}
        self.signed: dict[str, SignedReading] = {}  # board id -> its meter's latest signed
        self.boards: dict[str, AnnouncedBoard] = {}  # board id -> what its bridge claimed
        self.bridge_of: dict[str, str] = {}  # peer -> the registered bridge it proved to be
        self.registered: dict[str, dict[str, str]] = {}  # peer -> board id -> meter address
        self.factors: dict[str, dict[str, float]] = {}  # peer -> board id -> its time factor
        self.domain: ReadingDomain | None = None
        self.lock = threading.Lock()
        self._listeners: list[Callable[[AnnouncedBoard], None]] = []
        self._senders: dict[str, BoardSender] = {}  # board id -> its relay/budget commands

    def subscribe(self, listener: Callable[[AnnouncedBoard], None]) -> None:
        """Call listener(board) whenever a bridge claims one of its registered boards."""
        self._listeners.append(listener)

    def set_reading_domain(self, domain: ReadingDomain) -> None:
        """The chain and token signed readings must be for; others are dropped."""
        self.domain = domain

    # -- what bridges say ------------------------------------------------------------------

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
            boards = [_announced(board, registered, self.factors[peer]) for board in offered]
            mine = self.bridge_of[peer]
            # Registered boards are this bridge's alone: another peer holding one is this
            # bridge's own earlier connection (a reconnect), which gives way.
            for board in boards:
                self.sid[board.board_id] = peer
                before = self.boards.get(board.board_id)
                if before is None or before.meter != board.meter:
                    # What is cached (if anything) is another meter's: not comparable.
                    self._drop_readings(board.board_id)
                self.boards[board.board_id] = board
        log.info("bridge %s claimed boards %s", mine, [b.board_id for b in boards])
        for board in boards:
            for listener in list(self._listeners):
                try:
                    listener(board)
                except Exception:  # one listener's failure must not lose the claim
                    log.exception("a listener failed on board %s", board.board_id)
        return boards

    def report(self, peer: str, data: Any) -> None:
        """A reading a bridge sent unasked; kept only when it is that bridge's board's, every
        field checks out and its counters did not go back (else refused, the last kept)."""
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
        if "signed" in data:
            self._keep_signed(board_id, data["signed"])

    def _keep_signed(self, board_id: str, data: Any) -> None:
        """Keep a signed reading that its board's registered meter signed for our domain,
        dated no later than the portal's clock allows and not going back from the last one."""
        try:
            signed = SignedReading.from_json(data)
        except BridgeError as err:
            log.warning("signed reading of %s refused: %s", board_id, err)
            return
        board = self.boards.get(board_id)
        last = self.signed.get(board_id)
        if last is not None and last.meter != signed.meter:
            last = None  # another meter's counters say nothing about this one's
        # Bridges stamp readings with the wall clock: one dated ahead would be kept, refused
        # by the escrow, and make every honest reading after it look as if it went back.
        ahead = signed.timestamp - time.time()
        if board is None or signed.meter != board.meter:
            log.warning("signed reading of %s refused: meter %s is not its registered %s",
                        board_id, signed.meter, board and board.meter)
        elif self.domain is None or not signed.signed_by_meter(self.domain):
            log.warning("signed reading of %s refused: not signed by its meter", board_id)
        elif ahead > MAX_SKEW_S:
            log.warning("signed reading of %s refused: dated %.0f s ahead of the portal's clock"
                        " (at most %d s)", board_id, ahead, MAX_SKEW_S)
        elif last is not None and (signed.timestamp < last.timestamp or signed.wh_in < last.wh_in
                                   or signed.wh_out < last.wh_out):
            log.warning("signed reading of %s refused: it goes back", board_id)
        else:
            self.signed[board_id] = signed

    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The latest reading its registered meter signed, as its bridge sent it (no I/O)."""
        return self.signed.get(board_id)

    def _drop_readings(self, board_id: str) -> None:
        plain = self.latest.pop(board_id, None)
        signed = self.signed.pop(board_id, None)
        if plain is not None or signed is not None:
            log.info("readings cached for board %s dropped", board_id)

    def forget(self, board_ids: Collection[str]) -> None:
        """Boards whose bridge was revoked: offline at once, and what they reported is
        dropped, so a board registered again (perhaps with a new meter) starts afresh."""
        with self.lock:
            for board_id in board_ids:
                self.sid.pop(board_id, None)  # its bridge's reports are ignored from now on
                self.boards.pop(board_id, None)
                self._drop_readings(board_id)

    def disconnect(self, peer: str) -> None:
        """A bridge went away: its boards are offline until it announces them again."""
        with self.lock:
            self.bridge_of.pop(peer, None)
            self.registered.pop(peer, None)
            self.factors.pop(peer, None)
            for board_id in [b for b, sid in self.sid.items() if sid == peer]:
                del self.sid[board_id]
                log.warning("board %s went offline with its bridge", board_id)

    def peers_of(self, bridge_id: str) -> list[str]:
        """The connections a bridge holds now (to close when its credential is revoked)."""
        with self.lock:
            return [peer for peer, bridge in self.bridge_of.items() if bridge == bridge_id]

    # -- what the portal asks --------------------------------------------------------------

    def command(self, board_id: str, action: str, **data: Any) -> dict[str, Any]:
        """Run a command on the board's bridge and return its answer; BridgeError if it fails.

        It waits up to the timeout for the bridge: never call it holding the market's lock
        (relays and budgets go through the board's sender instead).
        """
        with self.lock:
            peer = self.sid.get(board_id)
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
        """A board a remote bridge will serve from now on (a participant the admin seated)."""
        with self.lock:
            self.allowed.add(board_id)

    def serves(self, board_id: str) -> bool:
        """Whether a remote bridge is expected to serve this board."""
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
            if board_id not in self.sid:
                raise BridgeError(f"board {board_id} is offline: its bridge is not connected")
            sender = self._senders.get(board_id)
            if sender is None:
                sender = self._senders[board_id] = BoardSender(
                    board_id, lambda c, b=board_id: self.command(b, **c))
        sender.put((action, relay), {"action": action, "relay": relay, **data})

    def online(self, board_id: str) -> bool:
        """Whether the board's bridge is connected."""
        return board_id in self.sid

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading its bridge sent, without asking."""
        return self.latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """The latest reading its bridge sent (it reports several a second): asking it would
        wait on a bridge that may never answer. BridgeError when offline or none came yet."""
        with self.lock:
            online = board_id in self.sid
        reading = self.latest.get(board_id)
        if not online or reading is None:
            raise BridgeError(f"board {board_id} has no reading: its bridge is "
                              + ("silent" if online else "not connected"))
        return reading


def reading_from_json(data: Any) -> Reading:
    """A reading a bridge sent as JSON, every field checked (BridgeError if one is wrong)."""
    return parse_reading(data)


@dataclass(frozen=True)
class AnnouncedBoard:
    """A board a registered bridge claimed: its id, kind, registered meter, and its time
    factor (1: real time; an emulator's speed), the admin's, which its HELLO declared too."""

    board_id: str
    kind: str
    meter: str
    time_factor: float = 1.0
    protocol: int | None = None


def _announced(
    board: Any, registered: Mapping[str, str], factors: Mapping[str, float]
) -> AnnouncedBoard:
    """One board of a hello, checked against what is registered to its bridge."""
    if not isinstance(board, dict) or not isinstance(board.get("board_id"), str):
        raise BridgeError("each board of a hello is an object with a board_id")
    board_id = board["board_id"]
    if board_id not in registered:
        raise BridgeError(f"board {board_id} is not registered to this bridge")
    meter = board.get("meter")
    if not isinstance(meter, str) or not is_hex_address(meter) \
            or to_checksum_address(meter) != registered[board_id]:
        raise BridgeError(f"board {board_id} is registered with meter {registered[board_id]},"
                          f" not {meter}")
    if board.get("kind") not in KINDS:
        raise BridgeError(f"board {board_id}: kind is producer or consumer")
    factor = board.get("time_factor", 1)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
            or not math.isfinite(factor) or not 1 <= factor <= MAX_TIME_FACTOR:
        raise BridgeError(f"board {board_id}: time_factor {factor!r} is not 1..{MAX_TIME_FACTOR}")
    # The time factor scales the meter's mint cap, so it is the admin's word, not the
    # bridge's (whose owner may be the one who would mint): a hello may only repeat it.
    mine = factors.get(board_id, 1.0)
    if round(float(factor), 3) != round(mine, 3):
        raise BridgeError(f"board {board_id}: time_factor {factor:g} is not its registered"
                          f" {mine:g} (the admin registers an emulated board's)")
    protocol = board.get("protocol")
    return AnnouncedBoard(board_id, board["kind"], registered[board_id], mine,
                          protocol if isinstance(protocol, int) else None)
