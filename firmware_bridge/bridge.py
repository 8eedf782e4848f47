"""The bridge: every board of this machine by id, latest readings, relay commands, heartbeats."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from firmware_bridge import protocol
from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.errors import BridgeError, FrameError
from firmware_bridge.protocol import Frame, Reading

log = logging.getLogger(__name__)

Listener = Callable[[str, Reading], None]


class Bridge:
    """Owns one BoardClient per serial port and keeps the boards' failsafe fed."""

    def __init__(self, heartbeat_s: float = 1.0, timeout: float = 1.0):
        self.heartbeat_s = heartbeat_s
        self.timeout = timeout
        self._clients: dict[str, BoardClient] = {}
        self._infos: dict[str, BoardInfo] = {}
        self._latest: dict[str, Reading] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None

    def attach(self, url: str) -> BoardInfo:
        """Connect to a board, learn its id with HELLO and start tracking it."""
        holder: dict[str, str] = {}
        client = BoardClient(url, self.timeout, lambda f: self._on_event(holder.get("id"), f))
        try:
            info = client.hello()
        except BridgeError:
            client.close()
            raise
        with self._lock:
            if info.board_id in self._clients:
                client.close()
                raise BridgeError(f"board {info.board_id} is already attached")
            holder["id"] = info.board_id
            self._clients[info.board_id] = client
            self._infos[info.board_id] = info
        self._latest[info.board_id] = client.read()
        if self._heart is None:
            self._heart = threading.Thread(target=self._heartbeat, name="bridge-hb", daemon=True)
            self._heart.start()
        return info

    def boards(self) -> dict[str, BoardInfo]:
        """Attached boards by id."""
        with self._lock:
            return dict(self._infos)

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a relay; returns once the board confirmed it."""
        self._client(board_id).set_relay(relay, on)
        reading = self._latest.get(board_id)
        if reading is not None:  # keep the cached reading's relay view truthful at once
            relays = list(reading.relays)
            relays[relay] = on
            self._latest[board_id] = _with_relays(reading, tuple(relays))

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading (unsolicited or asked for), without asking the board."""
        self._client(board_id)
        return self._latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """Ask the board for a reading now."""
        reading = self._client(board_id).read()
        self._latest[board_id] = reading
        return reading

    def subscribe(self, listener: Listener) -> None:
        """Call listener(board_id, reading) for every reading that arrives."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Stop heartbeats and close every port."""
        self._stop.set()
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def _client(self, board_id: str) -> BoardClient:
        with self._lock:
            client = self._clients.get(board_id)
        if client is None:
            raise BridgeError(f"no board {board_id!r} is attached")
        return client

    def _on_event(self, board_id: str | None, frame: Frame) -> None:
        if board_id is None:
            return
        if frame.verb == "READING":
            try:
                reading = protocol.parse_reading(frame.args)
            except FrameError as err:
                log.warning("board %s sent a bad reading: %s", board_id, err)
                return
            self._latest[board_id] = reading
            for listener in list(self._listeners):
                try:
                    listener(board_id, reading)
                except Exception:
                    log.exception("reading listener failed")
        elif frame.verb == "FAILSAFE":
            log.error("board %s opened its relays: no heartbeat reached it", board_id)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                clients = dict(self._clients)
            for board_id, client in clients.items():
                try:
                    client.heartbeat()
                except BridgeError as err:
                    log.warning("heartbeat to %s failed: %s", board_id, err)


def _with_relays(reading: Reading, relays: tuple[bool, ...]) -> Reading:
    from dataclasses import replace

    return replace(reading, relays=relays)
