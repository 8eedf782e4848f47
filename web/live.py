"""Socket.IO channels: /market broadcasts listings and deals, /wallet pushes each user's wallet,
/grid streams the boards' readings for the live charts; the default namespace / carries nothing.

Every channel is bound to the logged-in session: a connection without a signed-in session is
refused, and logging out closes the session's connections.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, request, session
from flask_socketio import Namespace, SocketIO, emit, join_room

from web.pushers import ADMINS_ROOM, CLOSED_SHOWN
from web.session import current_account, runtime
from web.state import portal

log = logging.getLogger(__name__)


class SessionNamespace(Namespace):
    """A channel only logged-in sessions may open; logout closes it."""

    def on_connect(self, auth: Any = None) -> bool:
        account = current_account()
        if account is None:
            return False  # refused: live data is for logged-in people
        portal().sockets.add(session["sid"], request.sid, self.namespace,
                             session.get("opened", 0), session.get("seen", 0))
        self.joined(account)
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        portal().sockets.remove(session.get("sid"), request.sid, self.namespace)
        self.left()

    def joined(self, account: Any) -> None:
        """What a channel does for a new connection."""

    def left(self) -> None:
        """What a channel does when a connection ends."""


class DefaultNamespace(SessionNamespace):
    """The default namespace "/": no channel lives here, but python-socketio accepts it
    unless a handler refuses, so anyone could hold a connection open; now only sessions can."""


class MarketNamespace(SessionNamespace):
    """Live listing cards for every logged-in browser; deals only for their parties (each
    browser is in its address's room) and admins."""

    def joined(self, account: Any) -> None:
        rt = runtime()
        admin = rt.is_admin(account.address)
        join_room(account.address)
        rt.market.learn(account.address)  # its funds read in the loop, before it bids
        if admin:
            join_room(ADMINS_ROOM)
        deals = rt.market.deals(None if admin else account.address)
        closed = rt.market.closed_listings(CLOSED_SHOWN, account.address)
        emit("snapshot", {"listings": rt.market.listings("open"), "deals": deals,
                          "closed": closed})


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
        emit("snapshot", {**feed.snapshot(), "period_s": current_app.config["GRID_PUSH_S"]})

    def left(self) -> None:
        feed = portal().feed
        with feed.lock:
            feed.watchers = max(0, feed.watchers - 1)


def register(io: SocketIO) -> None:
    """Attach the channels' namespaces (their parts are in the app's PortalState)."""
    from web.bridges import BridgeNamespace

    io.on_namespace(DefaultNamespace("/"))
    io.on_namespace(MarketNamespace("/market"))
    io.on_namespace(WalletNamespace("/wallet"))
    io.on_namespace(GridNamespace("/grid"))
    io.on_namespace(BridgeNamespace("/bridge"))
