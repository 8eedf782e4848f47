"""Energy models as plain dataclasses stepped by simulated seconds, with no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

NO_LOAD_FLOOR_W = 0.5  # a meter reads zero below this, like the seed's INA219 boards


@dataclass
class PvEmulator:
    """A PV panel under a clear-day irradiance profile (06:00-18:00), with a little noise."""

    peak_w: float = 400.0
    noise: float = 0.02
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    def power_w(self, hour: float) -> float:
        """Output power at an hour of the day (0-24, fractional)."""
        hour = hour % 24.0
        if not 6.0 < hour < 18.0:
            return 0.0
        clear = self.peak_w * math.sin(math.pi * (hour - 6.0) / 12.0)
        return max(0.0, clear * (1.0 + self.rng.gauss(0.0, self.noise)))


@dataclass
class LeadAcidBattery:
    """A 12 V lead-acid battery: stored energy within capacity, power limits, voltage by SoC."""

    capacity_wh: float = 1200.0
    stored_wh: float = 600.0
    max_charge_w: float = 500.0
    max_discharge_w: float = 600.0

    @property
    def soc(self) -> float:
        """State of charge, 0..1."""
        return self.stored_wh / self.capacity_wh

    def voltage(self) -> float:
        """Resting voltage: ~11.8 V empty to ~12.9 V full."""
        return 11.8 + 1.1 * self.soc

    def charge(self, power_w: float, dt_s: float) -> float:
        """Take up to power_w for dt_s; the Wh actually stored (surplus is curtailed)."""
        room = self.capacity_wh - self.stored_wh
        wh = min(max(power_w, 0.0), self.max_charge_w) * dt_s / 3600.0
        wh = min(wh, room)
        self.stored_wh += wh
        return wh

    def available_w(self, dt_s: float) -> float:
        """The most power the battery can give for the next dt_s."""
        if dt_s <= 0:
            return 0.0
        return min(self.max_discharge_w, self.stored_wh * 3600.0 / dt_s)

    def discharge(self, wh: float) -> None:
        """Remove energy that was delivered."""
        self.stored_wh = max(0.0, self.stored_wh - wh)


@dataclass
class Load:
    """A programmable DC load: constant power, or a profile of (hour, watts) steps."""

    power_w: float = 240.0
    profile: list[tuple[float, float]] = field(default_factory=list)

    def demand_w(self, hour: float) -> float:
        """Power wanted at an hour of the day."""
        wanted = self.power_w
        for start, watts in sorted(self.profile):
            if hour % 24.0 >= start:
                wanted = watts
        return wanted


@dataclass
class Meter:
    """A DC energy meter: exact Wh counters, noisy instantaneous readings, a no-load floor."""

    wh_in: float = 0.0
    wh_out: float = 0.0
    power_w: float = 0.0
    voltage_v: float = 12.0
    noise: float = 0.005
    rng: random.Random = field(default_factory=lambda: random.Random(2))

    def record(self, voltage_v: float, power_w: float, wh_in: float, wh_out: float) -> None:
        """Account one step: counters integrate the true energy; the display gets the rest."""
        self.wh_in += wh_in
        self.wh_out += wh_out
        self.voltage_v = voltage_v
        self.power_w = power_w

    def shown(self) -> tuple[float, float, float]:
        """(volts, amps, watts) as the meter displays them, noise and floor included."""
        volts = self.voltage_v * (1.0 + self.rng.gauss(0.0, self.noise))
        watts = self.power_w * (1.0 + self.rng.gauss(0.0, self.noise))
        if abs(watts) < NO_LOAD_FLOOR_W:
            watts = 0.0
        amps = watts / volts if volts else 0.0
        return volts, amps, watts
