"""The portal config read into what the parts take: the market's settings, lists given as text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marketplace.market import Settings
from marketplace.rules import Limits


def listed(value: Any) -> list[str]:
    """A config list given as a list or as comma-separated text ("a, b" -> ["a", "b"])."""
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def market_settings(config: Mapping[str, Any]) -> Settings:
    """The market's settings from the portal config."""
    return Settings(
        step_wh=config["STEP_WH"], mint_batch_wh=config["MINT_BATCH_WH"],
        deal_ttl_s=config["DEAL_TTL_S"],
        line_loss=float(config["LINE_LOSS"]), meter_accuracy=float(config["METER_ACCURACY"]),
        bus_floor_wh=float(config["BUS_FLOOR_WH"]), bus_window_wh=float(config["BUS_WINDOW_WH"]),
        bus_window_s=float(config["BUS_WINDOW_S"]),
        interval_s=int(config["INTERVAL_S"]),
        # The sim steps its market clock in emulated time (factor 1); else the emulator's speed.
        time_factor=float(config.get("MARKET_TIME_FACTOR") or config["EMULATOR_SPEED"]),
        pricing=_pricing(config["PRICING"]), settle_wh=int(config["SETTLE_WH"]),
        limits=Limits(
            min_increment_wei=config["BID_MIN_INCREMENT_WEI"],
            min_increment_pct=config["BID_MIN_INCREMENT_PCT"],
            soft_close_s=config["SOFT_CLOSE_S"],
            soft_close_cap_s=config["SOFT_CLOSE_CAP_S"],
            max_duration_s=config["MAX_DURATION_S"],
        ),
    )


def interval_wall_s(config: Mapping[str, Any], settings: Settings) -> int:
    """An interval in block (wall) seconds, as the interval settlement bounds readings' ages:
    config INTERVAL_WALL_S, else interval_s / time_factor (at least 1 s)."""
    if config.get("INTERVAL_WALL_S"):
        return int(config["INTERVAL_WALL_S"])
    return max(1, math.ceil(settings.interval_s / settings.time_factor))


def _pricing(value: Any) -> str:
    """The interval market's pricing rule from the config: clear (pay-as-clear) or bid."""
    rule = str(value).strip().lower()
    if rule not in ("clear", "bid"):
        raise ValueError(f"PRICING is 'clear' (pay-as-clear) or 'bid' (pay-as-bid), not {value!r}")
    return rule
