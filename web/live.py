"""Socket.IO channels: /market broadcasts listings and deals, /wallet pushes each user's wallet."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flask import Flask, request
from flask_socketio import Namespace, SocketIO, emit, join_room

from web.extensions import socketio
from web.session import current_account, runtime

log = logging.getLogger(__name__)

MARKET_TOPICS = {"listing_created", "bid_placed", "listing_closed", "deal_updated"}

_connected: dict[str, str] = {}  # wallet socket sid -> address
_dirty: set[str] = set()
_wake = threading.Event()
_guard = threading.Lock()


class MarketNamespace(Namespace):
    """Live listing cards and deals for every logged-in browser."""

    def on_connect(self, auth: Any = None) -> bool:
        if current_account() is None:
            return False  # refused: market data is for participants
        market = runtime().market
        emit("snapshot", {"listings": market.listings("open"), "deals": market.deals()})
        return True


class WalletNamespace(Namespace):
    """Each logged-in browser's own wallet, pushed when it changes."""

    def on_connect(self, auth: Any = None) -> bool:
        account = current_account()
        if account is None:
            return False
        join_room(account.address)
        with _guard:
            _connected[request.sid] = account.address
            _dirty.add(account.address)
        _wake.set()
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        with _guard:
            _connected.pop(request.sid, None)

    def on_refresh(self, data: Any = None) -> None:
        """A page asks for its wallet now (after an action it took)."""
        address = _connected.get(request.sid)
        if address:
            mark_dirty(address)


def register(io: SocketIO) -> None:
    """Attach the namespaces to the Socket.IO server."""
    io.on_namespace(MarketNamespace("/market"))
    io.on_namespace(WalletNamespace("/wallet"))


def mark_dirty(*addresses: str) -> None:
    """Ask the wallet pusher to send these addresses' wallets soon."""
    with _guard:
        _dirty.update(a for a in addresses if a)
    _wake.set()


def relay_to_browsers(topic: str, payload: dict[str, Any]) -> None:
    """Hub subscriber: market news to every browser, chain news to the wallets it touches."""
    if topic in MARKET_TOPICS:
        socketio.emit(topic, payload, namespace="/market")
        if topic == "deal_updated":
            mark_dirty(payload["buyer"], payload["seller"])
    elif topic == "tx":
        mark_dirty(payload["sender"], payload.get("to") or "")
    elif topic == "chain_event":
        mark_dirty(*[v for v in payload["args"].values() if isinstance(v, str) and len(v) == 42])


def push_wallets(app: Flask) -> None:
    """Background task: send each connected user's wallet when it changed, at least each second."""
    last: dict[str, str] = {}
    period = app.config["WALLET_PUSH_S"]
    rt = app.extensions["gridbid"]
    while not rt._stop.is_set():
        _wake.wait(period)
        _wake.clear()
        with _guard:
            online = set(_connected.values())
            _dirty.clear()
        for address in online:
            try:
                summary = rt.wallets.summary(address)
            except Exception:
                log.exception("wallet of %s not computed", address)
                continue
            text = json.dumps(summary, sort_keys=True)
            if last.get(address) != text:
                last[address] = text
                socketio.emit("wallet", summary, namespace="/wallet", to=address)
        for gone in set(last) - online:
            del last[gone]
        socketio.sleep(0.05)  # coalesce bursts of events into one push
