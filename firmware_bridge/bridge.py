"""The bridge: every board of this machine by id, latest readings (plain and signed by each
board's meter key), relay commands, heartbeats."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from firmware_bridge import protocol
from firmware_bridge.board_uri import BoardURI, BoardURIError, parse_board_uri
from firmware_bridge.boards import Boards
from firmware_bridge.client import BoardClient, BoardInfo
from firmware_bridge.emulated import start_emulated
from firmware_bridge.emulator import Microgrid
from firmware_bridge.errors import BridgeError, FrameError, MeterUnavailable
from firmware_bridge.odometer import Odometer
from firmware_bridge.protocol import Frame, Reading
from firmware_bridge.signing import ReadingDomain, SignedReading, sign_reading

log = logging.getLogger(__name__)

Listener = Callable[[str, Reading], None]
OVERTAKEN_S = 5.0  # how far back a reading's uptime may be and still be an overtaken one
HEARTBEAT_THREADS = 16  # boards fed at once; each waits on its own board's reply


class Bridge(Boards):
    """Owns one BoardClient per serial port, caches readings and keeps the boards' failsafe fed.

    meter_keys(board id) gives a board's meter key (None: no board is signed for); every reading
    goes through the odometer (odometer_dir: where it persists; None: memory only), so published
    counters never go back; once set_reading_domain is called, each board's reading is signed at
    most every sign_every_s.
    """

    def __init__(
        self, heartbeat_s: float = 1.0, *, timeout: float = 1.0, max_backoff_s: float = 8.0,
        meter_keys: Callable[[str], LocalAccount] | None = None,
        odometer_dir: Path | None = None, sign_every_s: float = 1.0,
    ):
        self.heartbeat_s = heartbeat_s
        self.timeout = timeout
        self.max_backoff_s = max_backoff_s
        self.sign_every_s = sign_every_s
        self._meter_keys = meter_keys
        self._keys: dict[str, LocalAccount] = {}  # board id -> its meter key
        self._odometer = Odometer(odometer_dir)
        self._domain: ReadingDomain | None = None
        self._signed: dict[str, SignedReading] = {}
        self._signed_at: dict[str, float] = {}  # board id -> monotonic time of its last signing
        self._urls: dict[str, str] = {}  # board id -> the port it was attached on
        self._retry: dict[str, tuple[float, float]] = {}  # board id -> (next try, backoff)
        self._event_listeners: list[Callable[[str, str, tuple[str, ...]], None]] = []
        self._clients: dict[str, BoardClient] = {}
        self._infos: dict[str, BoardInfo] = {}
        self._latest: dict[str, Reading] = {}
        # Boards whose meter is not answering (METER=FAULT, a METER FAULT event, or no values
        # yet): offline to the market, so their deals pause, and their readings go unsigned.
        self._meter_down: set[str] = set()
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        # Readings reach _publish from two threads (a request's reply, the event lane): one at
        # a time, so an overtaken one is dropped, not taken for a board restart by the odometer.
        self._publishing = threading.Lock()
        self._raw: dict[str, Reading] = {}  # board id -> its last raw reading published
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self._microgrids: list[Microgrid] = []  # the emulated boards' emulators, run here

    def attach_all(self, uris: Sequence[str], link_dir: Path | None = None) -> list[BoardInfo]:
        """Attach every board by URI (board_uri's table): all are parsed before any is
        opened; emulator:// ones share one microgrid this bridge runs (stable links in
        link_dir, when given)."""
        parsed = [parse_board_uri(uri) for uri in uris]
        emulated = [u for u in parsed if u.scheme == "emulator"]
        targets = [u.text for u in parsed if u.scheme != "emulator"]
        if emulated:
            grid, devices = start_emulated(emulated, link_dir)
            self._microgrids.append(grid)
            targets = list(devices.values()) + targets
        return [self.attach(target) for target in targets]

    def attach(self, url: str) -> BoardInfo:
        """Connect to a board (device path, pyserial URL or pzem://), HELLO and READ it, track
        it by id; BoardURIError for a URI that names no board (emulator://: attach_all)."""
        if self._stop.is_set():
            raise BridgeError("the bridge is closed")
        # Readings can arrive before HELLO tells us the board's id; until then they are dropped.
        known: dict[str, str] = {}
        client = self._open(parse_board_uri(url), lambda f: self._on_event(known.get("id"), f))
        try:
            info = client.hello()
            # Unlocked before the board is tracked, so its first reading is signed already.
            key = self._meter_keys(info.board_id) if self._meter_keys is not None else None
            with self._lock:
                if info.board_id in self._clients:
                    raise BridgeError(f"board {info.board_id} is already attached")
                if key is not None:
                    self._keys[info.board_id] = key
                known["id"] = info.board_id
                self._clients[info.board_id] = client
                self._infos[info.board_id] = info
                self._urls[info.board_id] = url
                if self._heart is None:
                    self._heart = threading.Thread(
                        target=self._heartbeat, name="bridge-heartbeat", daemon=True
                    )
                    self._heart.start()
        except BridgeError:
            client.close()
            raise
        try:
            self.read(info.board_id)  # so reading() has a value from the start
        except BridgeError as err:  # attached anyway: its unsolicited readings will fill in
            log.warning("board %s attached but not read: %s", info.board_id, err)
        return info

    def _open(self, uri: BoardURI, on_event: Callable[[Frame], None]) -> Any:
        """The client of one board: a gridbid board over pyserial, or a PZEM-017 meter."""
        if uri.scheme == "pzem":
            from firmware_bridge.pzem_board import PzemBoard  # pymodbus only where it is used

            return PzemBoard(uri)
        if uri.scheme == "emulator":
            raise BoardURIError(f"board {uri}: emulated boards are started by attach_all")
        return BoardClient(uri.target, timeout=self.timeout, on_event=on_event)

    def boards(self) -> dict[str, BoardInfo]:
        """Attached boards by id."""
        with self._lock:
            return dict(self._infos)

    def serves(self, board_id: str) -> bool:
        """Whether the board is attached here."""
        with self._lock:
            return board_id in self._clients

    def set_relay(self, board_id: str, on: bool, relay: int = 0) -> None:
        """Close (on) or open a relay; returns once the board confirmed it."""
        self._client(board_id).set_relay(relay, on)
        with self._lock:  # keep the cached relay view truthful until the next reading
            reading = self._latest.get(board_id)
            if reading is not None and relay < len(reading.relays):
                relays = list(reading.relays)
                relays[relay] = on
                self._latest[board_id] = dataclasses.replace(reading, relays=tuple(relays))

    def set_budget(self, board_id: str, wh: float | None, relay: int = 0) -> None:
        """Let a relay pass at most wh more Wh before the board opens it (None: no limit)."""
        self._client(board_id).set_budget(relay, wh)

    def online(self, board_id: str) -> bool:
        """Whether the board's port is open and its meter answers (False while unplugged)."""
        connected = self._client(board_id).connected
        with self._lock:
            return connected and board_id not in self._meter_down

    def meter_ok(self, board_id: str) -> bool:
        """Whether the board's meter answers (METER= of its readings, its METER events)."""
        with self._lock:
            return board_id not in self._meter_down

    def _meter_state(self, board_id: str, ok: bool, why: str) -> None:
        """Note a meter going down or coming back; said once per change."""
        with self._lock:
            was_ok = board_id not in self._meter_down
            if ok:
                self._meter_down.discard(board_id)
            else:
                self._meter_down.add(board_id)
        if was_ok and not ok:
            log.error("board %s meter not answering (%s): its budget-held relays are open, "
                      "readings are the last good ones and go unsigned", board_id, why)
        elif ok and not was_ok:
            log.warning("board %s meter answers again (%s)", board_id, why)

    def subscribe_events(self, listener: Callable[[str, str, tuple[str, ...]], None]) -> None:
        """Call listener(board_id, verb, args) for FAILSAFE, EXHAUSTED and other board news."""
        with self._lock:
            self._event_listeners.append(listener)

    def reading(self, board_id: str) -> Reading | None:
        """The latest reading (unsolicited or asked for) without asking the board; None if none."""
        self._client(board_id)  # unknown ids raise rather than look like a silent board
        with self._lock:
            return self._latest.get(board_id)

    def read(self, board_id: str) -> Reading:
        """Ask the board for a reading now (MeterUnavailable: it has no meter values)."""
        try:
            return self._publish(board_id, self._client(board_id).read())
        except MeterUnavailable as err:
            self._meter_state(board_id, False, f"METER={err.state}, no values")
            raise

    def meter(self, board_id: str) -> str | None:
        """The address of the board's meter key (None: this bridge signs nothing for it)."""
        with self._lock:
            key = self._keys.get(board_id)
        return None if key is None else key.address

    def set_reading_domain(self, domain: ReadingDomain) -> None:
        """Sign readings for this chain and token from now on (the latest ones at once)."""
        with self._lock:
            if domain != self._domain:  # signatures for another domain prove nothing here
                self._signed.clear()
                self._signed_at.clear()
            self._domain = domain
            latest = dict(self._latest)
        for board_id, reading in latest.items():
            self._sign(board_id, reading)

    def signed_reading(self, board_id: str) -> SignedReading | None:
        """The board's latest signed reading (no I/O); None before the first or without a key."""
        with self._lock:
            return self._signed.get(board_id)

    def subscribe(self, listener: Listener) -> None:
        """Call listener(board_id, reading) for every reading, on the board's reader thread."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """Stop heartbeats and close every port (the boards' failsafe then opens relays)."""
        self._stop.set()
        if self._heart is not None:
            self._heart.join(timeout=self.timeout + self.heartbeat_s + 1)
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            self._infos.clear()
        for client in clients:
            client.close()
        for grid in self._microgrids:
            grid.stop()

    def _client(self, board_id: str) -> BoardClient:
        with self._lock:
            client = self._clients.get(board_id)
        if client is None:
            raise BridgeError(f"no board {board_id!r} is attached")
        return client

    def _publish(self, board_id: str, raw: Reading) -> Reading:
        """The board's raw reading through the odometer: cached, signed when due, told."""
        with self._publishing:
            last = self._raw.get(board_id)
            # A reading overtaken on its way here (two threads publish: a request's reply, the
            # event lane) is older than the last; its counters a hair lower would look like a
            # board restart to the odometer. A restart's uptime drops to ~0; a board sending no
            # uptime (T=0) is never taken for an overtaken one.
            if last is not None and 0 < raw.uptime_s:
                if raw.uptime_s < last.uptime_s < raw.uptime_s + OVERTAKEN_S:
                    with self._lock:
                        return self._latest.get(board_id, raw)
                if raw.uptime_s == last.uptime_s:  # one tenth of a second: no restart in it
                    raw = dataclasses.replace(raw, wh_in=max(raw.wh_in, last.wh_in),
                                              wh_out=max(raw.wh_out, last.wh_out))
            self._raw[board_id] = raw
            self._meter_state(board_id, raw.meter == "OK", f"METER={raw.meter}")
            wh_in, wh_out = self._odometer.apply(board_id, raw.wh_in, raw.wh_out)
            reading = dataclasses.replace(raw, wh_in=wh_in, wh_out=wh_out)
            with self._lock:
                self._latest[board_id] = reading
                listeners = list(self._listeners)
        self._sign(board_id, reading)
        for listener in listeners:
            try:
                listener(board_id, reading)
            except Exception:  # one bad subscriber must not starve the others
                log.exception("reading listener failed")
        return reading

    def _sign(self, board_id: str, reading: Reading) -> None:
        """Sign the reading when a domain is set, the board has a key and a signature is due."""
        now, timestamp = time.monotonic(), int(time.time())
        if reading.meter != "OK":
            return  # last good counters under a new timestamp would claim what nobody measured
        with self._lock:
            key, domain = self._keys.get(board_id), self._domain
            last = self._signed.get(board_id)
            if key is None or domain is None:
                return
            if now - self._signed_at.get(board_id, -self.sign_every_s) < self.sign_every_s:
                return
            if last is not None and timestamp <= last.timestamp:
                return  # the contracts take one reading per meter and second, newest last
            self._signed_at[board_id] = now  # claimed: a concurrent reading does not sign too
        try:
            signed = sign_reading(key, domain, reading.wh_in, reading.wh_out, timestamp)
        except ValueError as err:
            log.error("board %s reading not signed: %s", board_id, err)
            return
        with self._lock:
            current = self._signed.get(board_id)
            if self._domain == domain and (current is None or current.timestamp < timestamp):
                self._signed[board_id] = signed

    def _on_event(self, board_id: str | None, frame: Frame) -> None:
        if board_id is None:
            return
        if frame.verb == "READING":
            try:
                self._publish(board_id, protocol.parse_reading(frame.args))
            except MeterUnavailable as err:
                self._meter_state(board_id, False, f"METER={err.state}, no values")
            except FrameError as err:
                log.warning("board %s sent a bad reading: %s", board_id, err)
            except (OSError, ValueError) as err:  # the odometer cannot keep it: not published
                log.error("board %s reading dropped: %s", board_id, err)
        elif frame.verb == "FAILSAFE":
            log.error("board %s opened its relays: no heartbeat reached it in time", board_id)
            with self._lock:
                reading = self._latest.get(board_id)
                if reading is not None:
                    opened = tuple(False for _ in reading.relays)
                    self._latest[board_id] = dataclasses.replace(reading, relays=opened)
        elif frame.verb == "METER":
            self._meter_state(board_id, frame.args[:1] == ("OK",), "METER " + " ".join(frame.args))
        elif frame.verb == "EXHAUSTED":
            log.info("board %s opened relay %s: its budget is spent", board_id, frame.args)
        else:
            log.info("board %s said %s", board_id, frame)
        if frame.verb != "READING":
            with self._lock:
                listeners = list(self._event_listeners)
            for listener in listeners:
                try:
                    listener(board_id, frame.verb, frame.args)
                except Exception:
                    log.exception("event listener failed")

    def _heartbeat(self) -> None:
        # Boards are fed side by side: one after another, a round over 200 boards took
        # longer than their 5 s failsafe once each round trip waited on a busy interpreter.
        # A board whose beat still waits (on its reply timeout) skips a round; the rest go on.
        busy: set[str] = set()
        with ThreadPoolExecutor(HEARTBEAT_THREADS, thread_name_prefix="bridge-hb") as pool:
            while not self._stop.wait(self.heartbeat_s):
                with self._lock:
                    clients = dict(self._clients)
                for board_id, client in clients.items():
                    if board_id in busy:
                        continue
                    busy.add(board_id)
                    pool.submit(self._beat, board_id, client).add_done_callback(
                        lambda _done, b=board_id: busy.discard(b))

    def _beat(self, board_id: str, client: Any) -> None:
        """One board's heartbeat (a polled meter: its reading), or its reconnection."""
        if self._stop.is_set():
            return
        if not client.connected:
            self._reconnect(board_id)
            return
        try:
            if getattr(client, "polled", False):  # a meter that never speaks unasked
                self._publish(board_id, client.read())
            else:
                client.heartbeat()
        except BridgeError as err:
            log.warning("heartbeat to board %s failed: %s", board_id, err)

    def _reconnect(self, board_id: str) -> None:
        """Reopen an unplugged board's port, backing off; no command is replayed to it."""
        now = time.monotonic()
        next_try, backoff = self._retry.get(board_id, (now, self.heartbeat_s / 2))
        if now < next_try:
            return
        url = self._urls[board_id]
        known = {"id": board_id}
        try:
            client = self._open(parse_board_uri(url), lambda f: self._on_event(known["id"], f))
        except BridgeError as err:
            backoff = min(backoff * 2, self.max_backoff_s)
            self._retry[board_id] = (now + backoff, backoff)
            log.info("board %s still unplugged (%s); next try in %.1f s", board_id, err, backoff)
            return
        try:
            info = client.hello()
            if info.board_id != board_id:
                raise BridgeError(f"{url} now answers as {info.board_id}, not {board_id}")
        except BridgeError as err:
            client.close()
            backoff = min(backoff * 2, self.max_backoff_s)
            self._retry[board_id] = (now + backoff, backoff)
            log.warning("board %s not back: %s", board_id, err)
            return
        with self._lock:
            old = self._clients.get(board_id)
            self._clients[board_id] = client
            self._infos[board_id] = info
        self._retry.pop(board_id, None)
        if old is not None:
            old.close()
        # The board reports its state after HELLO: relays as they are now, not as we last set
        # them (its failsafe may have opened them while it was away).
        log.warning("board %s is back on %s", board_id, url)
