"""Boards on a shared DC bus, stepped in simulated time, each served over its own pty."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from firmware_bridge.emulator.board import BoardEmulator
from firmware_bridge.emulator.models import Load, LeadAcidBattery, Meter, PvEmulator
from firmware_bridge.emulator.pty import PtyBoardServer
from firmware_bridge.protocol import Reading

LINE_LOSS = 0.02  # share of the energy leaving a battery that the bus loses before the load


@dataclass
class _Board:
    board_id: str
    kind: str
    meter: Meter
    emulator: BoardEmulator
    pv: PvEmulator | None = None
    battery: LeadAcidBattery | None = None
    load: Load | None = None
    pv_w: float = 0.0
    pv_wh: float = 0.0  # energy the panel produced (before curtailment), for energy balance
    server: PtyBoardServer | None = field(default=None, repr=False)


class Microgrid:
    """Producers (PV + battery) and consumers (loads) joined by a DC bus through relays."""

    def __init__(
        self,
        speed: float = 60.0,
        start_hour: float = 11.0,
        seed: int = 1,
        tick_s: float = 0.05,
        failsafe_timeout: float = 5.0,
        report_interval: float = 0.5,
    ):
        self.speed = speed
        self.hour = start_hour
        self.seed = seed
        self.tick_s = tick_s
        self.failsafe_timeout = failsafe_timeout
        self.report_interval = report_interval
        self.boards: dict[str, _Board] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_producer(
        self, board_id: str, pv_peak_w: float = 400.0, battery_wh: float = 1200.0,
        soc: float = 0.5, max_discharge_w: float = 600.0,
    ) -> None:
        """A producer board: PV charging a battery whose output relay 0 joins the bus."""
        import random

        self._add(
            board_id, "producer",
            pv=PvEmulator(peak_w=pv_peak_w, rng=random.Random(self.seed * 7919 + len(self.boards))),
            battery=LeadAcidBattery(battery_wh, battery_wh * soc, max_discharge_w=max_discharge_w),
        )

    def add_consumer(self, board_id: str, load_w: float = 240.0) -> None:
        """A consumer board: a load whose relay 0 joins the bus."""
        self._add(board_id, "consumer", load=Load(load_w))

    def _add(self, board_id: str, kind: str, **parts: object) -> None:
        import random

        meter = Meter(rng=random.Random(self.seed * 104729 + len(self.boards)))
        board = _Board(board_id, kind, meter, None, **parts)  # type: ignore[arg-type]
        board.emulator = BoardEmulator(
            board_id, kind, read=lambda b=board: self.reading(b.board_id),
            failsafe_timeout=self.failsafe_timeout, lock=self.lock,
        )
        with self.lock:
            self.boards[board_id] = board

    def reading(self, board_id: str) -> Reading:
        """What a board's meter shows now."""
        with self.lock:
            b = self.boards[board_id]
            volts, amps, watts = b.meter.shown()
            return Reading(
                voltage_v=volts, current_a=amps, power_w=watts,
                wh_in=b.meter.wh_in, wh_out=b.meter.wh_out,
                relays=tuple(b.emulator.relays),
                soc=b.battery.soc if b.battery else None,
                pv_w=b.pv_w if b.pv else None,
                uptime_s=b.emulator.uptime(),
            )

    def advance(self, sim_seconds: float, step_s: float = 1.0) -> None:
        """Step the physics by sim_seconds of simulated time (no waiting)."""
        left = sim_seconds
        while left > 1e-9:
            dt = min(step_s, left)
            self._step(dt)
            left -= dt

    def _step(self, dt: float) -> None:
        with self.lock:
            producers = [b for b in self.boards.values() if b.kind == "producer"]
            consumers = [b for b in self.boards.values() if b.kind == "consumer"]
            charged = {}
            for p in producers:
                p.pv_w = p.pv.power_w(self.hour)
                p.pv_wh += p.pv_w * dt / 3600.0
                charged[p.board_id] = p.battery.charge(p.pv_w, dt)
            on_prod = [p for p in producers if p.emulator.relays[0]]
            on_cons = [c for c in consumers if c.emulator.relays[0]]
            demand_w = sum(c.load.demand_w(self.hour) for c in on_cons)
            supply_w = {p.board_id: 0.0 for p in producers}
            if on_prod and demand_w > 0:
                want_each = demand_w * (1 + LINE_LOSS) / len(on_prod)
                for p in on_prod:
                    supply_w[p.board_id] = min(want_each, p.battery.available_w(dt))
            delivered_w = sum(supply_w.values()) / (1 + LINE_LOSS)
            share = delivered_w / demand_w if demand_w else 0.0
            bus_v = min((p.battery.voltage() for p in on_prod), default=0.0)
            for p in producers:
                out_wh = supply_w[p.board_id] * dt / 3600.0
                p.battery.discharge(out_wh)
                p.meter.record(
                    p.battery.voltage(), supply_w[p.board_id], charged[p.board_id], out_wh
                )
            for c in consumers:
                watts = c.load.demand_w(self.hour) * share if c in on_cons else 0.0
                c.meter.record(bus_v if watts else 0.0, watts, watts * dt / 3600.0, 0.0)
            self.hour = (self.hour + dt / 3600.0) % 24.0

    def start(self) -> dict[str, str]:
        """Serve every board on a pty and run the physics in real time × speed."""
        devices = {}
        for board in self.boards.values():
            board.server = PtyBoardServer(board.emulator, report_interval=self.report_interval)
            devices[board.board_id] = board.server.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="microgrid", daemon=True)
        self._thread.start()
        return devices

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            self.advance((now - last) * self.speed, step_s=max(self.tick_s * self.speed, 1.0))
            last = now

    def stop(self) -> None:
        """Stop the physics and close every pty."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for board in self.boards.values():
            if board.server:
                board.server.stop()
