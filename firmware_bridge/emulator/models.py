"""Energy models as plain dataclasses stepped by simulated seconds, with no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

NO_LOAD_FLOOR_W = 0.5  # a meter reads zero below this, like the seed's shunt-meter boards


def _hours_later(hour: float, dt_s: float) -> float:
    """The time of day dt_s seconds after hour."""
    return (hour + dt_s / 3600.0) % 24.0


@dataclass
class PvEmulator:
    """A PV panel under a clear-day or a cloudy irradiance profile (06:00-18:00), with noise.

    With profile "clouds", clouds drift over the panel: a transmission between 0.15 (thick
    cloud) and 1 (clear) that wanders with a time constant of about ten minutes.
    """

    peak_w: float = 400.0
    hour: float = 11.0
    noise: float = 0.02
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    power_w: float = 0.0
    profile: str = "clear"
    cloud: float = 1.0  # share of the clear-sky irradiance that gets through now

    def __post_init__(self) -> None:
        if self.profile not in ("clear", "clouds"):
            raise ValueError(f"irradiance profile {self.profile!r} is not clear or clouds")

    def clear_sky_w(self, hour: float) -> float:
        """Noise-free output at an hour of the day (0-24, fractional)."""
        return self.peak_w * max(0.0, math.sin(math.pi * ((hour % 24.0) - 6.0) / 12.0))

    def step(self, dt_s: float) -> float:
        """Produce for dt_s from the current hour; the power (W) held over the step."""
        clear = self.clear_sky_w(self.hour)
        if self.profile == "clouds":
            # A mean-reverting random walk: clouds come and go over minutes, not per step.
            pull = min(1.0, dt_s / 600.0)
            self.cloud += pull * (0.6 - self.cloud) + self.rng.gauss(0.0, 0.35 * pull ** 0.5)
            self.cloud = min(1.0, max(0.15, self.cloud))
            clear *= self.cloud
        self.power_w = max(0.0, clear * (1.0 + self.rng.gauss(0.0, self.noise))) if clear else 0.0
        self.hour = _hours_later(self.hour, dt_s)
        return self.power_w


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
        """Resting voltage: 11.8 V empty to 12.9 V full (lead-acid is near-linear in between)."""
        return 11.8 + 1.1 * self.soc

    def step(self, dt_s: float, charge_w: float, discharge_w: float) -> tuple[float, float]:
        """Offer charge_w and ask discharge_w for dt_s; the (Wh stored, Wh given) really moved.

        Charge is capped by max_charge_w and by the room left (the rest is curtailed);
        discharge by max_discharge_w and by the energy stored, so the battery stays in
        0..capacity_wh.
        """
        hours = dt_s / 3600.0
        stored = min(max(charge_w, 0.0) * hours, self.max_charge_w * hours,
                     self.capacity_wh - self.stored_wh)
        self.stored_wh += stored
        given = min(max(discharge_w, 0.0) * hours, self.max_discharge_w * hours, self.stored_wh)
        self.stored_wh -= given
        return stored, given

    def discharge_limit_wh(self, dt_s: float) -> float:
        """Wh the battery could give over dt_s: its power limit, and what it stores."""
        return min(self.max_discharge_w * dt_s / 3600.0, self.stored_wh)

    def discharge(self, wh: float) -> float:
        """Give wh (at most what it stores) to the bus; the Wh really given."""
        given = min(max(wh, 0.0), self.stored_wh)
        self.stored_wh -= given
        return given


@dataclass
class Load:
    """A programmable DC load: constant power, or a profile of (from-hour, watts) steps."""

    power_w: float = 240.0
    profile: list[tuple[float, float]] = field(default_factory=list)
    hour: float = 11.0

    def demand_w(self) -> float:
        """Power wanted at the current hour: the last profile step started, else power_w."""
        wanted = self.power_w
        for start, watts in sorted(self.profile):
            if self.hour >= start:
                wanted = watts
        return wanted

    def step(self, dt_s: float) -> float:
        """Run for dt_s; the power (W) wanted over the step."""
        wanted = self.demand_w()
        self.hour = _hours_later(self.hour, dt_s)
        return wanted


@dataclass
class Meter:
    """A DC energy meter: exact Wh counters, noisy instantaneous readings, a no-load floor.

    It sits where energy enters and leaves the board's store or load: `in` is energy into
    the battery (producer) or load (consumer), `out` is energy a battery gives to the bus.
    """

    wh_in: float = 0.0
    wh_out: float = 0.0
    power_w: float = 0.0  # true net power, in minus out
    voltage_v: float = 0.0
    noise: float = 0.005
    rng: random.Random = field(default_factory=lambda: random.Random(2))

    def step(self, dt_s: float, voltage_v: float, in_wh: float, out_wh: float) -> None:
        """Account one step; counters take the exact energies, the display their mean power."""
        self.wh_in += in_wh
        self.wh_out += out_wh
        self.voltage_v = voltage_v
        self.power_w = (in_wh - out_wh) * 3600.0 / dt_s if dt_s > 0 else 0.0

    def shown(self) -> tuple[float, float, float]:
        """(volts, amps, watts) as the meter displays them, noise and no-load floor included."""
        volts = self.voltage_v * (1.0 + self.rng.gauss(0.0, self.noise))
        watts = self.power_w * (1.0 + self.rng.gauss(0.0, self.noise))
        if abs(watts) < NO_LOAD_FLOOR_W:
            watts = 0.0
        amps = watts / volts if volts > 0.1 else 0.0
        return volts, amps, watts
