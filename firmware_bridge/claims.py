"""What a bridge may claim and report, checked: its hello's boards and its signed readings.

Pure checks (no I/O, no state of their own), so every portal worker applies the same rules to
what any bridge says, whichever worker it is connected to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.reading_json import parse_reading
from firmware_bridge.signing import ReadingDomain, SignedReading

MAX_BOARDS = 64  # boards one hello may claim
MAX_TIME_FACTOR = 10_000  # the fastest emulated clock a board may run at
MAX_SKEW_S = 60  # how far past the portal's clock a signed reading may be dated
KINDS = ("producer", "consumer")


@dataclass(frozen=True)
class AnnouncedBoard:
    """A board a registered bridge claimed: its id, kind, registered meter, and its time
    factor (1: real time; an emulator's speed), the admin's, which its HELLO declared too."""

    board_id: str
    kind: str
    meter: str
    time_factor: float = 1.0
    protocol: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The board as the board bus carries it between workers."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> AnnouncedBoard:
        """A board from the bus (a worker checked it against the registry on hello)."""
        if not isinstance(data, dict) or not isinstance(data.get("board_id"), str) \
                or data.get("kind") not in KINDS or not is_hex_address(data.get("meter")):
            raise BridgeError(f"a claimed board on the bus is malformed: {data!r}")
        protocol = data.get("protocol")
        return cls(data["board_id"], data["kind"], to_checksum_address(data["meter"]),
                   float(data.get("time_factor", 1.0)),
                   protocol if isinstance(protocol, int) else None)


def reading_from_json(data: Any) -> Reading:
    """A reading a bridge sent as JSON, every field checked (BridgeError if one is wrong)."""
    return parse_reading(data)


def announced(
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


def signed_refusal(
    signed: SignedReading, board: AnnouncedBoard | None, last: SignedReading | None,
    domain: ReadingDomain | None, now: float,
) -> str | None:
    """Why a signed reading is not kept (None: keep it): it must be its board's registered
    meter's, for our domain, dated no later than now allows, and not go back from last."""
    if last is not None and last.meter != signed.meter:
        last = None  # another meter's counters say nothing about this one's
    # Bridges stamp readings with the wall clock: one dated ahead would be kept, refused
    # by the escrow, and make every honest reading after it look as if it went back.
    ahead = signed.timestamp - now
    if board is None or signed.meter != board.meter:
        return f"meter {signed.meter} is not its registered {board and board.meter}"
    if domain is None or not signed.signed_by_meter(domain):
        return "not signed by its meter"
    if ahead > MAX_SKEW_S:
        return f"dated {ahead:.0f} s ahead of the portal's clock (at most {MAX_SKEW_S} s)"
    if last is not None and (signed.timestamp < last.timestamp or signed.wh_in < last.wh_in
                             or signed.wh_out < last.wh_out):
        return "it goes back"
    return None
