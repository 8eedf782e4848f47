"""Boards on a shared DC bus, stepped in simulated time, each served over its own pty."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge import protocol
from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.emulator.models import LeadAcidBattery, Load, Meter, PvEmulator
from firmware_bridge.emulator.pty import PtyBoardServer, SocketBoardServer
from firmware_bridge.errors import MeterFault
from firmware_bridge.protocol import Reading

LINE_LOSS = 0.02  # share of the energy leaving a battery that the bus wiring turns into heat


@dataclass
class _Board:
    """One board's common hardware: its meter and its protocol side."""

    board_id: str
    meter: Meter
    emulator: BoardEmulator
    server: PtyBoardServer | None = field(default=None, repr=False)
    meter_unplugged: bool = False  # its meter stopped answering: reading() raises MeterFault


@dataclass
class _Producer(_Board):
    """A producer: PV panel charging a battery; relay 0 joins the battery to the bus."""

    pv: PvEmulator = field(default_factory=PvEmulator)
    battery: LeadAcidBattery = field(default_factory=LeadAcidBattery)
    pv_wh: float = 0.0  # what the panel produced so far, stored or curtailed


@dataclass
class _Consumer(_Board):
    """A consumer: a programmable load; relay 0 joins it to the bus."""

    load: Load = field(default_factory=Load)
    wanted_wh: float = 0.0  # what the load's profile asked for so far, served or not


class Microgrid:
    """Producers (PV + battery) and consumers (loads) joined by a DC bus through relays.

    Simulated time runs `speed` times faster than wall-clock time once started; the
    boards' protocol timers (failsafe, report interval, uptime) stay on wall-clock time.
    Each board declares `speed` as its time factor (TF) in HELLO, so the portal rates its
    meter for energy counted that much faster.

    Stepped (`stepped=True`), no thread moves the physics: a driver calls advance() in
    fixed steps of `step_s` emulated seconds, so a seed gives the same weather and loads
    whatever the wall clock does (the boards' failsafe timers still run on wall time).
    """

    def __init__(
        self,
        speed: float = 60.0,
        start_hour: float = 11.0,
        seed: int = 1,
        tick_s: float = 0.05,
        *,
        failsafe_timeout: float = 5.0,
        report_interval: float = 0.5,
        stepped: bool = False,
        step_s: float | None = None,
    ):
        protocol.format_time_factor(speed)  # a speed no HELLO can declare is refused here
        self.speed = speed
        self.hour = start_hour % 24.0
        self.seed = seed
        self.tick_s = tick_s
        self.stepped = stepped
        self.step_s = step_s or tick_s * speed  # emulated seconds of one physics step
        self.failsafe_timeout = failsafe_timeout
        self.report_interval = report_interval
        self.line_loss_wh = 0.0  # energy lost on the bus so far, for energy-balance checks
        self.lock = threading.RLock()
        self._boards: dict[str, _Board] = {}
        self.link_dir: Path | None = None
        self._server_class: type[PtyBoardServer] = PtyBoardServer
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None

    def add_producer(
        self,
        board_id: str,
        pv_peak_w: float = 400.0,
        battery_wh: float = 1200.0,
        soc: float = 0.5,
        max_discharge_w: float = 600.0,
        sky: str = "clear",
    ) -> None:
        """A producer board: PV (under a "clear" or "clouds" sky) charging a battery whose
        output relay 0 joins to the bus."""
        meter, emulator = self._parts(board_id, "producer")
        pv = PvEmulator(peak_w=pv_peak_w, hour=self.hour, rng=self._rng(board_id, "pv"),
                        profile=sky)
        battery = LeadAcidBattery(battery_wh, battery_wh * min(max(soc, 0.0), 1.0),
                                  max_discharge_w=max_discharge_w)
        # Show live values before the first physics step, as a powered board would.
        pv.power_w, meter.voltage_v = pv.clear_sky_w(self.hour), battery.voltage()
        self._add(_Producer(board_id, meter, emulator, pv=pv, battery=battery))

    def add_consumer(
        self, board_id: str, load_w: float = 240.0, profile: list[tuple[float, float]] | None = None
    ) -> None:
        """A consumer board: a load (constant, or (from-hour, watts) steps) behind relay 0."""
        meter, emulator = self._parts(board_id, "consumer")
        self._add(_Consumer(
            board_id, meter, emulator, load=Load(load_w, list(profile or []), hour=self.hour)
        ))

    def set_battery(self, board_id: str, soc: float, pv_peak_w: float | None = None) -> None:
        """Set a producer's state of charge (and PV peak): a drained battery, a dark day."""
        with self.lock:
            board = self._boards[board_id]
            if not isinstance(board, _Producer):
                raise ValueError(f"{board_id} is not a producer")
            board.battery.stored_wh = board.battery.capacity_wh * min(max(soc, 0.0), 1.0)
            if pv_peak_w is not None:
                board.pv.peak_w = pv_peak_w

    def board(self, board_id: str) -> BoardEmulator:
        """The protocol side of a board, to feed it frames directly (tests, a local console)."""
        return self._boards[board_id].emulator

    @property
    def devices(self) -> dict[str, str]:
        """{board_id: pty device path} of the boards being served (empty until start())."""
        return {b.board_id: b.server.device for b in self._boards.values() if b.server}

    def unplug_meter(self, board_id: str, unplugged: bool = True) -> None:
        """Cut (or, unplugged=False, restore) a board's meter cable; the board acts at once:
        METER FAULT (OK) to its host, its budget-held relays opened."""
        with self.lock:
            self._boards[board_id].meter_unplugged = unplugged
            self._boards[board_id].emulator.poll_meter()

    def reading(self, board_id: str) -> Reading:
        """What a board's meter shows now (unrounded; the protocol rounds it); MeterFault
        while its meter is unplugged."""
        with self.lock:
            b = self._boards[board_id]
            if b.meter_unplugged:
                raise MeterFault(f"{board_id}: meter not answering")
            volts, amps, watts = b.meter.shown()
            return Reading(
                voltage_v=volts, current_a=amps, power_w=watts,
                wh_in=b.meter.wh_in, wh_out=b.meter.wh_out,
                relays=tuple(b.emulator.relays),
                soc=b.battery.soc if isinstance(b, _Producer) else None,
                pv_w=b.pv.power_w if isinstance(b, _Producer) else None,
                uptime_s=b.emulator.uptime(),
                budgets=tuple(b.emulator.budgets),
            )

    def time_of_day(self) -> float:
        """The emulated hour of the day now, read between two physics steps."""
        with self.lock:
            return self.hour

    def physics(self) -> dict[str, dict[str, float]]:
        """Each board's true energy so far, beyond what its meter shows: a producer's PV
        produced and battery stored now, a consumer's Wh its load profile asked for (and
        every meter's exact counters)."""
        with self.lock:
            out: dict[str, dict[str, float]] = {}
            for b in self._boards.values():
                meter = {"wh_in": b.meter.wh_in, "wh_out": b.meter.wh_out}
                if isinstance(b, _Producer):
                    out[b.board_id] = {**meter, "pv_wh": b.pv_wh,
                                       "stored_wh": b.battery.stored_wh,
                                       "capacity_wh": b.battery.capacity_wh,
                                       "max_discharge_w": b.battery.max_discharge_w}
                elif isinstance(b, _Consumer):
                    out[b.board_id] = {**meter, "wanted_wh": b.wanted_wh}
            return out

    def pause(self) -> None:
        """Stop emulated time: the meters stop moving, the boards still answer and fail safe."""
        self._paused.set()

    def resume(self) -> None:
        """Let emulated time run on after pause()."""
        self._paused.clear()

    def advance(self, sim_seconds: float, step_s: float | None = None) -> None:
        """Step the physics by sim_seconds of simulated time, at once (deterministic for a seed).

        In steps of step_s (default the grid's step_s); the last one shorter if need be.
        """
        step = step_s or self.step_s
        left = sim_seconds
        while left > 1e-9:
            dt = min(step, left)
            self._step(dt)
            left -= dt

    def start(
        self, link_dir: str | os.PathLike[str] | None = None, transport: str = "pty"
    ) -> dict[str, str]:
        """Serve every board on its own pty and run physics in real time × speed; the devices.

        With link_dir, each board also gets a stable path `<link_dir>/<board_id>` pointing at
        its pty (as udev's /dev/serial/by-id does), which follows it across unplug/replug.
        transport "socket" serves each board on a loopback TCP port instead (`socket://` URLs).
        """
        if transport not in ("pty", "socket"):
            raise ValueError(f"transport {transport!r} is not pty or socket")
        self._server_class = SocketBoardServer if transport == "socket" else PtyBoardServer
        if self._thread is not None:
            raise RuntimeError("microgrid is already started")
        self.link_dir = Path(link_dir) if link_dir else None
        devices = {}
        for board in self._boards.values():
            board.emulator.power_on()
            devices[board.board_id] = self._serve(board)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="microgrid", daemon=True)
        self._thread.start()
        return devices

    def unplug(self, board_id: str) -> None:
        """Pull the board's serial cable: its pty closes, the board itself keeps running."""
        board = self._boards[board_id]
        if board.server:
            board.server.stop()
            board.server = None
        if self.link_dir:
            (self.link_dir / board_id).unlink(missing_ok=True)

    def replug(self, board_id: str) -> str:
        """Plug the cable back in: a new pty (and the stable link moved to it)."""
        return self._serve(self._boards[board_id])

    def _serve(self, board: _Board) -> str:
        board.server = self._server_class(board.emulator, report_interval=self.report_interval)
        device = board.server.start()
        if self.link_dir is None or device.startswith("socket://"):
            return device
        self.link_dir.mkdir(parents=True, exist_ok=True)
        link = self.link_dir / board.board_id
        tmp = link.with_name(f".{board.board_id}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(device)
        tmp.replace(link)  # atomic, so a reconnecting bridge never sees a missing link
        return str(link)

    def stop(self) -> None:
        """Stop the physics and close every pty (safe to call twice)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
            self._thread = None
        for board in self._boards.values():
            if board.server:
                board.server.stop()
                board.server = None
            if self.link_dir:
                (self.link_dir / board.board_id).unlink(missing_ok=True)

    def _parts(self, board_id: str, kind: str) -> tuple[Meter, BoardEmulator]:
        if self._thread is not None:
            raise RuntimeError("add boards before start(): each needs its pty")
        if board_id in self._boards:
            raise ValueError(f"board {board_id!r} already exists")
        emulator = BoardEmulator(
            board_id, kind, read=lambda: self.reading(board_id),
            failsafe_timeout=self.failsafe_timeout, lock=self.lock, time_factor=self.speed,
        )
        return Meter(rng=self._rng(board_id, "meter")), emulator

    def _add(self, board: _Board) -> None:
        with self.lock:
            self._boards[board.board_id] = board

    def _rng(self, board_id: str, part: str) -> random.Random:
        # Seeded by name, not by order, so adding a board does not change the others' noise.
        return random.Random(f"{self.seed}:{board_id}:{part}")

    def _step(self, dt: float) -> None:
        """One physics step: PV into batteries, closed batteries feed closed loads.

        A board with a budget stops exactly at it within the step (it passes no more than
        allowance()); the batteries share the bus's demand equally, one that reaches its own
        limit or budget leaving the rest to the others, as parallel sources on a bus do.
        """
        with self.lock:
            hours = dt / 3600.0
            producers = [b for b in self._boards.values() if isinstance(b, _Producer)]
            consumers = [b for b in self._boards.values() if isinstance(b, _Consumer)]
            # Every load and panel steps so its clock keeps time; only closed ones are on the bus.
            draw: dict[str, float] = {}
            for c in consumers:
                wanted_wh = c.load.step(dt) * hours
                c.wanted_wh += wanted_wh
                draw[c.board_id] = min(wanted_wh, c.emulator.allowance(0))
            stored: dict[str, float] = {}
            for p in producers:
                pv_w = p.pv.step(dt)
                p.pv_wh += pv_w * hours
                stored[p.board_id], _ = p.battery.step(dt, pv_w, 0.0)
            limits = {p.board_id: min(p.battery.discharge_limit_wh(dt), p.emulator.allowance(0))
                      for p in producers if p.emulator.relays[0]}
            demand_wh = sum(draw.values())
            gives = _share(demand_wh / (1.0 - LINE_LOSS) if limits else 0.0, limits)
            given_wh = 0.0
            for p in producers:
                given = p.battery.discharge(gives.get(p.board_id, 0.0))
                p.meter.step(dt, p.battery.voltage(), stored[p.board_id], given)
                p.emulator.consume(0, given)
                given_wh += given
            delivered_wh = given_wh * (1.0 - LINE_LOSS)
            self.line_loss_wh += given_wh - delivered_wh
            # A resistive loss of LINE_LOSS of the power is the same share of voltage drop.
            bus_v = min((p.battery.voltage() for p in producers if p.board_id in limits),
                        default=0.0)
            for c in consumers:
                share = draw[c.board_id] / demand_wh if demand_wh else 0.0
                wh = min(delivered_wh * share, draw[c.board_id])  # never past its budget
                c.meter.step(dt, bus_v * (1.0 - LINE_LOSS) if wh > 0 else 0.0, wh, 0.0)
                c.emulator.consume(0, wh)
            self.hour = (self.hour + dt / 3600.0) % 24.0

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            if not self._paused.is_set() and not self.stepped:
                self.advance((now - last) * self.speed)
            last = now
            for board in list(self._boards.values()):
                # The failsafe is the board's own timer: it runs with the cable pulled too.
                board.emulator.check_failsafe()


def _share(total_wh: float, limits: dict[str, float]) -> dict[str, float]:
    """total_wh split equally among sources, each up to its limit, the rest to those left."""
    gives: dict[str, float] = {}
    left = total_wh
    # Smallest limit first: once it is met, the others share what remains equally.
    ordered = sorted(limits, key=lambda b: (limits[b], b))
    for i, board_id in enumerate(ordered):
        gives[board_id] = min(limits[board_id], max(left, 0.0) / (len(ordered) - i))
        left -= gives[board_id]
    return gives
