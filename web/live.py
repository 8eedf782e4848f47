"""Socket.IO channels: /market broadcasts listings and deals, /wallet pushes each user's wallet."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import Namespace, SocketIO, emit, join_room

from web.extensions import socketio
from web.session import current_account, runtime

log = logging.getLogger(__name__)

MARKET_TOPICS = {"listing_created", "bid_placed", "listing_closed", "deal_updated"}


class WalletPusher:
    """Knows which wallets have a browser open and sends each one when it changes."""

    def __init__(self, app: Flask):
        self.app = app
        self.connected: dict[str, str] = {}  # /wallet socket sid -> address
        self.wake = threading.Event()
        self.lock = threading.Lock()

    def join(self, sid: str, address: str) -> None:
        """A browser of this address opened /wallet."""
        with self.lock:
            self.connected[sid] = address
        self.wake.set()

    def leave(self, sid: str) -> None:
        """A browser closed /wallet."""
        with self.lock:
            self.connected.pop(sid, None)

    def poke(self) -> None:
        """Check the wallets now rather than at the next period."""
        self.wake.set()

    def on_hub(self, topic: str, payload: dict[str, Any]) -> None:
        """Hub subscriber: market news to every browser; anything else may move a wallet."""
        if topic in MARKET_TOPICS:
            socketio.emit(topic, payload, namespace="/market")
        self.poke()

    def run(self) -> None:
        """Background task: push each open wallet that changed, checking at least each period."""
        last: dict[str, str] = {}
        rt = self.app.extensions["gridbid"]
        while not rt.stopping:
            self.wake.wait(self.app.config["WALLET_PUSH_S"])
            self.wake.clear()
            with self.lock:
                online = set(self.connected.values())
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
            socketio.sleep(0.05)  # coalesce a burst of events into one push


def pusher() -> WalletPusher:
    """The current app's wallet pusher."""
    return current_app.extensions["gridbid.pusher"]


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
        pusher().join(request.sid, account.address)
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        pusher().leave(request.sid)

    def on_refresh(self, data: Any = None) -> None:
        """A page asks for its wallet now (after an action it took)."""
        pusher().poke()


def register(io: SocketIO, app: Flask) -> None:
    """Attach the namespaces and this app's wallet pusher."""
    from web.bridges import BridgeNamespace

    io.on_namespace(MarketNamespace("/market"))
    io.on_namespace(WalletNamespace("/wallet"))
    io.on_namespace(BridgeNamespace("/bridge"))
    app.extensions["gridbid.pusher"] = WalletPusher(app)
