"""Remote bridges the admin registered: each one's credential and the boards it may serve.

A bridge proves itself with its own token, shown to the admin once and kept only as its
SHA-256; it may claim only the boards registered to it, each with the meter address given
here, so no bridge can claim another's board (online or not) or name someone else's meter.
Each board's time factor is registered here too (1 unless the admin says it is emulated):
it scales the meter's mint cap, so the bridge, whose owner may gain by it, never picks it.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from typing import Any

from firmware_bridge.remote_boards import MAX_TIME_FACTOR
from marketplace import rules
from marketplace.errors import InvalidInput, NotFound
from marketplace.store import Store
from web.runtime import Runtime
from web.runtime.local_bridge import token_hash

MAX_BOARDS = 64


def authenticate(store: Store, bridge_id: str, token: str) -> dict[str, Any] | None:
    """The live bridge this id and token prove (its row with boards), or None."""
    row = store.bridge(bridge_id)
    given = token_hash(token)
    # Compared in constant time even for an unknown id, so timing tells nothing.
    expected = row["token_sha256"] if row else token_hash(secrets.token_hex(16))
    return row if hmac.compare_digest(given, expected) and row else None


def _name(text: Any, what: str) -> str:
    value = text.strip() if isinstance(text, str) else ""
    if not value or len(value) > 64 or not value.replace("-", "").replace("_", "").isalnum() \
            or not value.isascii():
        raise InvalidInput(f"a {what} is 1–64 letters, digits, - or _")
    return value


def _time_factor(value: Any, board_id: str) -> float:
    """A board's time factor: 1 (real time) when not given, else 1..MAX_TIME_FACTOR."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 1 <= value <= MAX_TIME_FACTOR:
        raise InvalidInput(f"board {board_id}: time_factor is a number 1–{MAX_TIME_FACTOR}"
                           " (1: a real board; an emulator's speed)")
    return float(value)


def check_boards(rt: Runtime, boards: Any) -> list[dict[str, Any]]:
    """The boards a bridge may serve: each a board id (not a local board), its meter and its
    time factor."""
    if not isinstance(boards, list) or not 1 <= len(boards) <= MAX_BOARDS:
        raise InvalidInput(f"boards is a list of 1–{MAX_BOARDS} {{board_id, meter}}")
    checked = []
    for board in boards:
        if not isinstance(board, dict):
            raise InvalidInput("each board is {board_id, meter, time_factor}")
        board_id = _name(board.get("board_id"), "board id")
        if rt.bridge.serves(board_id):
            raise InvalidInput(f"board {board_id} is one of this machine's own boards")
        checked.append({"board_id": board_id,
                        "meter": rules.parse_address(board.get("meter"), "meter"),
                        "time_factor": _time_factor(board.get("time_factor"), board_id)})
    for key in ("board_id", "meter"):
        values = [b[key].lower() for b in checked]
        if len(set(values)) != len(values):
            raise InvalidInput(f"each {key} appears once")
    return checked


def register(rt: Runtime, bridge_id: Any, boards: Any) -> dict[str, Any]:
    """Register a bridge; its id, boards and token (the only time the token is shown)."""
    name = _name(bridge_id, "bridge id")
    checked = check_boards(rt, boards)
    token = secrets.token_urlsafe(32)
    refused = rt.store.add_bridge(name, token_hash(token), checked, time.time())
    if refused:
        raise InvalidInput(refused)
    for board in checked:
        rt.remote_boards.expect(board["board_id"])
    return {"id": name, "token": token, "boards": checked}


def listing(rt: Runtime) -> list[dict[str, Any]]:
    """Every live bridge with its boards, and whether each board is online now."""
    remote = rt.remote_boards
    return [{"id": row["id"], "created": row["created"],
             # Connected here, or to another worker (its boards' claims are repeated).
             "online": bool(remote.peers_of(row["id"]))
             or any(remote.online(b["board_id"]) for b in row["boards"]),
             "boards": [{**_registered(b), "online": remote.online(b["board_id"])}
                        for b in row["boards"]]}
            for row in rt.store.bridges()]


def revoke(rt: Runtime, bridge_id: str) -> None:
    """Revoke a bridge's credential (NotFound if it has none live); what its boards reported
    is forgotten, so a board registered again (with a new meter, say) starts afresh."""
    row = rt.store.bridge(bridge_id)
    if not rt.store.revoke_bridge(bridge_id, time.time()):
        raise NotFound(f"no registered bridge {bridge_id}")
    rt.remote_boards.forget([b["board_id"] for b in row["boards"]] if row else [])


def _registered(board: dict[str, Any]) -> dict[str, Any]:
    # Bridges registered before time factors were kept have real (factor 1) boards.
    return {**board, "time_factor": float(board.get("time_factor") or 1)}


def boards_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A bridge row's boards, each {board_id, meter, time_factor}."""
    return [_registered(b) for b in row["boards"]]


def registered_board(store: Store, board_id: str) -> dict[str, Any] | None:
    """The board registered on a live bridge, {board_id, meter, time_factor}, if any."""
    for row in store.bridges():
        for board in boards_of(row):
            if board["board_id"] == board_id:
                return board
    return None
