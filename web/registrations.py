"""People who register themselves: their own key's encrypted keystore, kept until the admin
approves, and which keystores the portal serves (only where the owner asked it to)."""

from __future__ import annotations

import json
import time
from typing import Any

from eth_utils import is_address, to_checksum_address

from marketplace.errors import InvalidInput, NotFound
from web import registry
from web.runtime import Runtime
from web.runtime.demo import DEMO

ROLES = ("producer", "consumer")
MAX_KEYSTORE_BYTES = 16_384


def check_name(name: object) -> str:
    """A participant name: 1–32 letters, digits, - or _ (else InvalidInput)."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > 32 or not text.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("a name is 1–32 letters, digits, - or _")
    return text


def check_keystore(keystore: object, address: str) -> str:
    """An encrypted geth/Web3 Secret Storage keystore of this address, as JSON text."""
    if not isinstance(keystore, dict):
        raise InvalidInput("give your encrypted keystore (the JSON your page made)")
    text = json.dumps(keystore)
    crypto = keystore.get("crypto") or keystore.get("Crypto")
    if len(text) > MAX_KEYSTORE_BYTES or not isinstance(crypto, dict) or "ciphertext" not in crypto:
        raise InvalidInput("that is not an encrypted keystore (version 3, with crypto.ciphertext)")
    named = str(keystore.get("address") or "")
    named = named if named.startswith("0x") else "0x" + named
    if not is_address(named) or to_checksum_address(named) != address:
        raise InvalidInput("the keystore is not of the key that signed the registration")
    return text


def register(rt: Runtime, address: str, name: object, keystore: object, serve: bool) -> None:
    """Keep a registration for the admin to approve (InvalidInput if name or key is taken)."""
    text = check_keystore(keystore, address)
    who = check_name(name)
    if who.lower() in reserved_names(rt):
        raise InvalidInput(f"the name {who!r} is reserved on this portal; choose another")
    if not rt.store.add_registration(
        address, who, text, serve, time.time()
    ):
        raise InvalidInput(f"the name {who!r} or this key is already registered")


def reserved_names(rt: Runtime) -> set[str]:
    """Names nobody may register (lower case): every account's, the demo's even while it is
    off (turning it on would seat that person as the demo account, its keystore served and
    its logins loopback-only), and the admin names ADMINS lists (taking one makes an admin)."""
    admins = {a for a in rt.accounts.admins if not is_address(a)}
    return {n.lower() for n in [*rt.accounts.names(), *(d["name"] for d in DEMO), *admins]}


def approve(rt: Runtime, address: str, role: object, board_id: object = None) -> dict[str, Any]:
    """The admin seats a registered person in a role, with the board that will measure it:
    its meter is enrolled once the person consents (asked now when the board is registered
    to a bridge, else when the bridge serving it announces it)."""
    row = _pending(rt, address)
    if role not in ROLES:
        raise InvalidInput("role is producer or consumer")
    board = check_board(rt, board_id)
    rt.market.add_participant(row["name"], address, str(role), board, None)
    if board is not None:
        rt.remote_boards.expect(board)  # its bridge's hello is welcome now
    rt.accounts.record(row["name"], address)
    rt.store.set_registration_status(address, "approved")
    registered = registry.registered_board(rt.store, board) if board is not None else None
    if registered is not None:  # the owner's wallet view now asks them to consent to its meter
        rt.meters.seat_on_board(address, board, registered["meter"], registered["time_factor"])
    return {"address": address, "name": row["name"], "role": role, "board_id": board,
            "status": "approved"}


def check_board(rt: Runtime, board_id: object) -> str | None:
    """A board id for a new participant: free, and like the bridges name boards (or none)."""
    if board_id is None or board_id == "":
        return None
    text = board_id.strip() if isinstance(board_id, str) else ""
    if not text or len(text) > 64 or not text.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("a board id is 1–64 letters, digits, - or _")
    if any(p["board_id"] == text for p in rt.store.participants()):
        raise InvalidInput(f"board {text} already measures another participant")
    return text


def reject(rt: Runtime, address: str) -> dict[str, Any]:
    """The admin turns a registration down."""
    row = _pending(rt, address)
    rt.store.set_registration_status(address, "rejected")
    return {"address": address, "name": row["name"], "status": "rejected"}


def serves_keystore(rt: Runtime, address: str) -> bool:
    """Whether the portal hands out this account's encrypted keystore (the owner's choice;
    the demo's and the admin's keystores are served so their printed passphrases work)."""
    if any(a["address"] == address for a in rt.demo_accounts + rt.admin_accounts):
        return True
    row = rt.store.registration(address)
    return bool(row and row["serve_keystore"] and row["status"] == "approved")


def keystore(rt: Runtime, address: str) -> dict[str, Any] | None:
    """The encrypted keystore the portal serves for an address, or None."""
    if not serves_keystore(rt, address):
        return None
    row = rt.store.registration(address)
    return json.loads(row["keystore"]) if row else rt.keystore.read(address)


def _pending(rt: Runtime, address: str) -> dict[str, Any]:
    row = rt.store.registration(address)
    if row is None or row["status"] != "pending":
        raise NotFound(f"no pending registration for {address}")
    return row
