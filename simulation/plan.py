"""What a simulated day is made of: its length, pace, chain and participants."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ETHER = 10**18
MARKETS = ("intervals", "lots")
MILLI_ETH_PER_KWH = 10**15  # prices are wei per kWh; 0.001 ETH/kWh is a readable unit

RESERVE_WH = 240  # a fifth of the emulated 1200 Wh battery stays the producer's own

# Load shapes of a day as (from-hour, share of the consumer's peak watts).
LOAD_SHAPES = [
    [(0, 0.25), (6, 0.6), (9, 0.3), (17, 1.0), (22, 0.4)],  # a household: evening peak
    [(0, 0.0), (8, 1.0), (12, 0.7), (13, 1.0), (18, 0.0)],  # a workshop: working hours
    [(0, 0.5), (7, 0.8), (19, 1.0), (23, 0.5)],  # a cold store: always on
    [(0, 0.0), (10, 0.6), (15, 1.0), (20, 0.2)],  # a shop
    [(0, 0.3), (5, 1.0), (8, 0.2), (18, 0.8)],  # a bakery: early and late
]


@dataclass
class Plan:
    """What a simulated day is made of."""

    producers: int = 3
    consumers: int = 5
    hours: float = 24.0
    start_hour: float = 0.0
    # Hours traded before the measured day (ending at its start): everyone's first
    # settlement falls in them, so the day's gas is a steady state's (intervals: the measured
    # day must start at midnight, where the warm-up's positions all settle).
    warmup_hours: float = 0.0
    settle_wh: int | None = None  # the interval market's SETTLE_WH (None: the portal's 1000)
    speed: float = 300.0  # emulated seconds per real second
    chain: str = "embedded://"
    out: Path = Path("var/simulation")
    seed: int = 1  # participants, weather and loads: one seed is one replayable day
    market: str = "intervals"  # or "lots": the seed's lot auctions
    step_s: float = 15.0  # emulated seconds of one physics step (the market clock's too)
    interval_s: int = 900  # emulated seconds of one interval (and of the metrics' intervals)
    agent_period_s: float = 0.1  # real seconds between the agents' rounds
    sample_s: float = 120.0  # emulated seconds between the plots' samples
    lot_wh: int = 120
    auction_s: int = 900  # emulated seconds an auction runs
    participants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def trade_start_hour(self) -> float:
        """The time of day trading starts at: the warm-up's start, else the day's."""
        return (self.start_hour - self.warmup_hours) % 24

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market {self.market!r} is not one of {', '.join(MARKETS)}")
        if self.warmup_hours < 0 or self.warmup_hours * 3600 % self.interval_s:
            raise ValueError("the warm-up is a whole number of intervals")
        if self.warmup_hours and self.market == "intervals" and self.start_hour % 24:
            raise ValueError("after a warm-up the interval market's measured day starts at "
                             "midnight (--start-hour 0), where every position settles")
        if not self.participants:
            self.participants = cast(self.producers, self.consumers, self.seed)


def cast(producers: int, consumers: int, seed: int = 1) -> list[dict[str, Any]]:
    """The day's participants: PV peaks and reserve prices, load profiles and price limits."""
    rng = random.Random(seed)
    people: list[dict[str, Any]] = []
    for i in range(1, producers + 1):
        people.append({
            "name": f"producer{i}", "role": "producer", "passphrase": f"producer{i}-sim",
            "board": f"pv-producer{i}", "pv_peak_w": 300 + 100 * ((i - 1) % 3),
            "sky": "clouds" if i % 3 == 2 else "clear",
            # An odd number of wei, so the escrow's rounding down is exercised for real.
            "reserve_wei": (8 + 2 * i) * MILLI_ETH_PER_KWH + rng.randrange(1, 999),
            "reserve_wh": RESERVE_WH,  # the battery energy it keeps for itself
        })
    for i in range(1, consumers + 1):
        peak = rng.choice([160, 200, 240, 300])
        shape = LOAD_SHAPES[(i - 1) % len(LOAD_SHAPES)]
        people.append({
            "name": f"consumer{i}", "role": "consumer", "passphrase": f"consumer{i}-sim",
            "board": f"load-consumer{i}", "load_w": float(peak),  # its meter's rating
            "profile": [(hour, round(peak * share, 1)) for hour, share in shape],
            "limit_wei": (14 + 3 * i) * MILLI_ETH_PER_KWH + rng.randrange(1, 999),
        })
    return people
