"""Socket.IO channels: /market broadcasts listings and deals, /wallet pushes each user's wallet,
/grid streams the boards' readings for the live charts.

Every channel is bound to the logged-in session: a connection without an unlocked key is
refused, and logging out closes the session's connections.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flask import Flask, current_app, request, session
from flask_socketio import Namespace, SocketIO, emit, join_room

from web.extensions import socketio
from web.session import current_account, runtime
from web.state import portal

log = logging.getLogger(__name__)

MARKET_TOPICS = {"listing_created", "bid_placed", "listing_closed", "deal_updated"}


class WalletPusher:
    """Knows which wallets have a browser open and sends each one when it changes."""

    def __init__(self, app: Flask):
        self.app = app
        self.connected: dict[str, str] = {}  # /wallet socket sid -> address
        self.last: dict[str, str] = {}  # address -> the wallet as last sent (JSON)
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

    def push_changed(self) -> None:
        """One pass: send each open wallet that changed since it was last sent."""
        wallets = portal(self.app).runtime.wallets
        with self.lock:
            online = set(self.connected.values())
        for address in online:
            try:
                summary = wallets.summary(address)
            except Exception:
                log.exception("wallet of %s not computed", address)
                continue
            text = json.dumps(summary, sort_keys=True)
            if self.last.get(address) != text:
                self.last[address] = text
                socketio.emit("wallet", summary, namespace="/wallet", to=address)
        for gone in set(self.last) - online:
            del self.last[gone]


class SessionSockets:
    """Which Socket.IO connections each login session holds, so logout can close them."""

    def __init__(self) -> None:
        self._by_token: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def add(self, token: str, sid: str, namespace: str) -> None:
        with self._lock:
            self._by_token.setdefault(token, set()).add((sid, namespace))

    def remove(self, token: str | None, sid: str, namespace: str) -> None:
        with self._lock:
            held = self._by_token.get(token or "")
            if held is not None:
                held.discard((sid, namespace))
                if not held:
                    del self._by_token[token]

    def close(self, token: str | None) -> None:
        """Disconnect every connection of a session (its key was just dropped)."""
        with self._lock:
            held = self._by_token.pop(token or "", set())
        for sid, namespace in held:
            socketio.server.disconnect(sid, namespace=namespace)


class GridFeed:
    """Samples every board once a period for the charts: PV, battery, power through meters."""

    def __init__(self, app: Flask):
        self.app = app
        self.watchers = 0
        self.lock = threading.Lock()

    def sample(self) -> dict[str, Any]:
        """One sample of every board with an owner (unreadable boards say so)."""
        rt = portal(self.app).runtime
        # Stamped with the wall clock: the charts show when each sample was taken.
        return {"t": time.time(), "boards": rt.boards()}

    def prices(self) -> list[dict[str, Any]]:
        """Clearing prices of the auctions that sold, oldest first (the last 200)."""
        sold = portal(self.app).runtime.market.listings("sold")[:200]
        return [_price_point(v) for v in reversed(sold) if v["highest_bid_wei"] is not None]

    def push_sample(self) -> None:
        """One pass: a sample to /grid, while anyone watches."""
        with self.lock:
            watched = self.watchers > 0
        if watched:
            socketio.emit("sample", self.sample(), namespace="/grid")

    def on_hub(self, topic: str, payload: dict[str, Any]) -> None:
        """A sold auction adds a point to the price chart."""
        if topic == "listing_closed" and payload.get("status") == "sold":
            socketio.emit("price", _price_point(payload), namespace="/grid")


def _price_point(view: dict[str, Any]) -> dict[str, Any]:
    return {"t": view["deadline"], "listing_id": view["id"], "energy_wh": view["energy_wh"],
            "price_wei": view["highest_bid_wei"]}


class SessionNamespace(Namespace):
    """A channel only logged-in sessions may open; logout closes it."""

    def on_connect(self, auth: Any = None) -> bool:
        account = current_account()
        if account is None:
            return False  # refused: live data is for logged-in people
        portal().sockets.add(session["key"], request.sid, self.namespace)
        self.joined(account)
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        portal().sockets.remove(session.get("key"), request.sid, self.namespace)
        self.left()

    def joined(self, account: Any) -> None:
        """What a channel does for a new connection."""

    def left(self) -> None:
        """What a channel does when a connection ends."""


class MarketNamespace(SessionNamespace):
    """Live listing cards and deals for every logged-in browser."""

    def joined(self, account: Any) -> None:
        market = runtime().market
        emit("snapshot", {"listings": market.listings("open"), "deals": market.deals()})


class WalletNamespace(SessionNamespace):
    """Each logged-in browser's own wallet, pushed when it changes."""

    def joined(self, account: Any) -> None:
        join_room(account.address)
        portal().pusher.join(request.sid, account.address)

    def left(self) -> None:
        portal().pusher.leave(request.sid)

    def on_refresh(self, data: Any = None) -> None:
        """A page asks for its wallet now (after an action it took)."""
        portal().pusher.poke()


class GridNamespace(SessionNamespace):
    """Readings for the live charts: a snapshot of prices, then a sample each period."""

    def joined(self, account: Any) -> None:
        feed = portal().feed
        with feed.lock:
            feed.watchers += 1
        emit("snapshot", {"sample": feed.sample(), "prices": feed.prices(),
                          "period_s": current_app.config["GRID_PUSH_S"]})

    def left(self) -> None:
        feed = portal().feed
        with feed.lock:
            feed.watchers = max(0, feed.watchers - 1)


def register(io: SocketIO) -> None:
    """Attach the channels' namespaces (their parts are in the app's PortalState)."""
    from web.bridges import BridgeNamespace

    io.on_namespace(MarketNamespace("/market"))
    io.on_namespace(WalletNamespace("/wallet"))
    io.on_namespace(GridNamespace("/grid"))
    io.on_namespace(BridgeNamespace("/bridge"))
