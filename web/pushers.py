"""What the live channels push: wallets that changed, grid samples and prices, and which
Socket.IO connections each login session holds."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from web.extensions import socketio
from web.grid_history import GridHistory
from web.runtime import Runtime

log = logging.getLogger(__name__)

ADMINS_ROOM = "admins"  # /market room of the admins' browsers: they see every deal
MARKET_TOPICS = {"listing_created", "bid_placed", "listing_closed", "deal_updated"}
INTERVAL_TOPIC = "interval"  # the interval market cleared an interval (marketplace.intervals)
# News that moves no wallet (Wallets.summary reads no bid): no pass over the open wallets for
# it. A pass reads each open wallet's balances from the chain (~8 calls): woken by every bid,
# it ran every WalletPusher gap (50 ms) while bids came, for every wallet page open.
STILL_WALLETS = {"bid_placed"}
FILLS_PUSHED = 20  # the newest intervals of one's own fills each push carries
CLOSED_SHOWN = 50  # closed auctions a market page lists (and as many of one's own)


class WalletPusher:
    """Knows which wallets have a browser open and sends each one when it changes."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.connected: dict[str, str] = {}  # /wallet socket sid -> address
        self.last: dict[tuple[str, str], str] = {}  # (event, address) -> last sent (JSON)
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
        if topic == "deal_updated":  # a deal is its parties' business (and the admins')
            rooms = [payload["buyer"], payload["seller"], ADMINS_ROOM]
            socketio.emit(topic, payload, namespace="/market", to=rooms)
        elif topic in MARKET_TOPICS:
            socketio.emit(topic, payload, namespace="/market")
        elif topic == INTERVAL_TOPIC:  # every market page counts down to the next clearing
            socketio.emit(topic, interval_news(self.runtime, payload), namespace="/market")
        if topic not in STILL_WALLETS:
            self.poke()

    def push_changed(self) -> None:
        """One pass: send each open wallet that changed since it was last sent."""
        wallets = self.runtime.wallets
        with self.lock:
            online = set(self.connected.values())
        intervals = self.runtime.market.intervals
        for address in online:
            try:
                summary = wallets.summary(address)
                fills = {"fills": intervals.fills_of(address, FILLS_PUSHED),
                         "current": summary["interval"]}
            except Exception:
                log.exception("wallet of %s not computed", address)
                continue
            self._send("wallet", summary, "/wallet", address)
            self._send("fills", fills, "/market", address)  # the Automatic trading card's
        for gone in [key for key in self.last if key[1] not in online]:
            del self.last[gone]

    def _send(self, event: str, payload: dict[str, Any], namespace: str, address: str) -> None:
        """Emit to an address's browsers unless they were last sent just this."""
        text = json.dumps(payload, sort_keys=True, default=str)
        if self.last.get((event, address)) != text:
            self.last[(event, address)] = text
            socketio.emit(event, payload, namespace=namespace, to=address)


class SessionSockets:
    """Which Socket.IO connections each login session holds, so logout can close them, and
    when each session was last seen, so its sockets close when it idles out too."""

    def __init__(self) -> None:
        self._by_token: dict[str, set[tuple[str, str]]] = {}
        self._times: dict[str, tuple[float, float]] = {}  # token -> (opened, last seen)
        self._lock = threading.Lock()

    def add(self, token: str, sid: str, namespace: str, opened: float, seen: float) -> None:
        """A connection of a session that signed in at `opened` and was last seen at `seen`."""
        with self._lock:
            self._by_token.setdefault(token, set()).add((sid, namespace))
            known = self._times.get(token, (opened, seen))
            self._times[token] = (opened, max(seen, known[1]))

    def touch(self, token: str, now: float) -> None:
        """The session made a request: its sockets' idle clock starts again."""
        with self._lock:
            if token in self._times:
                self._times[token] = (self._times[token][0], now)

    def remove(self, token: str | None, sid: str, namespace: str) -> None:
        with self._lock:
            held = self._by_token.get(token or "")
            if held is not None:
                held.discard((sid, namespace))
                if not held:
                    del self._by_token[token]
                    self._times.pop(token, None)

    def close(self, token: str | None) -> None:
        """Disconnect every connection of a session (its key was just dropped)."""
        with self._lock:
            held = self._by_token.pop(token or "", set())
            self._times.pop(token or "", None)
        for sid, namespace in held:
            socketio.server.disconnect(sid, namespace=namespace)

    def close_idle(self, now: float, idle_s: float, max_s: float) -> None:
        """Close the sockets of sessions that ended by themselves: idle too long, or open
        longer than a session may be (the HTTP side refuses them then; sockets must too)."""
        with self._lock:
            over = [token for token, (opened, seen) in self._times.items()
                    if now - seen > idle_s or now - opened > max_s]
        for token in over:
            self.close(token)


class GridFeed:
    """Samples every board once a period for the charts (PV, battery, power through meters),
    keeping a step of them over the last emulated day (GridHistory) for pages that open later."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.watchers = 0
        self.lock = threading.Lock()
        self.history = GridHistory()

    def now(self) -> tuple[float, float]:
        """(market clock, emulated) seconds now: the charts' axis is the emulated time."""
        market = self.runtime.market
        t = market.clock.now()
        return t, t * market.settings.time_factor

    def sample(self) -> dict[str, Any]:
        """One sample of every board with an owner (unreadable boards say so)."""
        t, emulated = self.now()
        return {"t": t, "emulated_t": emulated, "boards": self.runtime.boards()}

    def prices(self) -> list[dict[str, Any]]:
        """Clearing prices of the auctions that sold, oldest first (the last 200)."""
        sold = self.runtime.market.sold_listings(200)
        factor = self.runtime.market.settings.time_factor
        return [_price_point(v, factor) for v in reversed(sold)
                if v["highest_bid_wei"] is not None]

    def snapshot(self) -> dict[str, Any]:
        """What a page opening the Grid view draws first: the kept day, prices, a sample."""
        return {"sample": self.sample(), "prices": self.prices(),
                "history": self.history.series(),
                "time_factor": self.runtime.market.settings.time_factor}

    def push_sample(self) -> None:
        """One pass: a sample to /grid while anyone watches, and to the kept day when due."""
        with self.lock:
            watched = self.watchers > 0
        _, emulated = self.now()
        if not watched and not self.history.due(emulated):
            return  # nobody to send it to and nothing to keep: no board is read
        sample = self.sample()
        self.history.add(sample["emulated_t"], sample["boards"])
        if watched:
            socketio.emit("sample", sample, namespace="/grid")

    def on_hub(self, topic: str, payload: dict[str, Any]) -> None:
        """A sold auction adds a point to the price chart."""
        if topic == "listing_closed" and payload.get("status") == "sold":
            factor = self.runtime.market.settings.time_factor
            socketio.emit("price", _price_point(payload, factor), namespace="/grid")
        elif topic == INTERVAL_TOPIC:  # a point on the clearing-price chart
            socketio.emit(topic, interval_news(self.runtime, payload), namespace="/grid")


def timing(market: Any) -> dict[str, Any]:
    """When the next clearing is, in market-clock seconds and as seconds left from now (the
    page counts down from that: its own clock may not be the market's), with the interval's
    emulated length and the emulator's speed (the pages scale their time axes by it)."""
    next_at = float(market.intervals.next_clearing_at())
    settings = market.settings
    return {"next_clearing_at": next_at,
            "seconds_left": max(0.0, next_at - market.clock.now()),
            "interval_s": settings.interval_s, "time_factor": settings.time_factor,
            "pricing": settings.pricing}


def interval_news(runtime: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    """An interval's clearing as pushed: the hub's payload with the next clearing's timing
    (seconds left by the market's clock, which a page's own clock need not match)."""
    # Scalars only (n, price, volume, times): who filled what is in the published interval.
    news = {k: v for k, v in payload.items() if not isinstance(v, (list, dict))}
    return {**news, **timing(runtime.market)}


def _price_point(view: dict[str, Any], time_factor: float) -> dict[str, Any]:
    """A sold auction on the price chart, at its close in emulated time."""
    return {"t": view["deadline"], "emulated_t": view["deadline"] * time_factor,
            "listing_id": view["id"], "energy_wh": view["energy_wh"],
            "price_wei": view["highest_bid_wei"]}
