"""Readings as remote bridges send them in JSON, checked before the portal uses one.

A bridge is another machine: what it sends is input. A reading is refused (BridgeError, saying
which field) unless every number is a real, finite number (not a bool, not a string), counters
and budgets are >= 0 and relays are booleans, so nothing downstream (charts, health, minting)
ever meets a "x", NaN or Infinity.
"""

from __future__ import annotations

import math
from typing import Any

from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading

MAX_RELAYS = 16  # far more than any board has; bounds what one message can make us keep
NUMBERS = ("voltage_v", "current_a", "power_w", "wh_in", "wh_out")
OPTIONAL_NUMBERS = ("soc", "pv_w")
NOT_NEGATIVE = ("wh_in", "wh_out", "uptime_s")


def _number(name: str, value: Any) -> float:
    """A finite int or float (bools are not numbers here); BridgeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BridgeError(f"reading: {name} {value!r} is not a number")
    if not math.isfinite(value):
        raise BridgeError(f"reading: {name} {value!r} is not finite")
    if name in NOT_NEGATIVE and value < 0:
        raise BridgeError(f"reading: {name} {value!r} is negative")
    return float(value)


def _relays(value: Any) -> tuple[bool, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_RELAYS:
        raise BridgeError(f"reading: relays must be a list of at most {MAX_RELAYS} booleans")
    if not all(isinstance(relay, bool) for relay in value):
        raise BridgeError(f"reading: relays {value!r} are not all booleans")
    return tuple(value)


def _budgets(value: Any, relays: int) -> tuple[float | None, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > relays:
        raise BridgeError("reading: budgets must be a list, one per relay at most")
    budgets = tuple(None if wh is None else _number("budget", wh) for wh in value)
    if any(wh is not None and wh < 0 for wh in budgets):
        raise BridgeError(f"reading: budgets {value!r} hold a negative Wh")
    return budgets


def parse_reading(data: Any) -> Reading:
    """A reading from its JSON object, every field checked; BridgeError says what is wrong.

    Fields a newer bridge adds are ignored; a missing required field is refused.
    """
    if not isinstance(data, dict):
        raise BridgeError("reading: must be an object")
    missing = [name for name in (*NUMBERS, "relays") if name not in data]
    if missing:
        raise BridgeError(f"reading: {', '.join(missing)} missing")
    values: dict[str, Any] = {name: _number(name, data[name]) for name in NUMBERS}
    for name in OPTIONAL_NUMBERS:
        value = data.get(name)
        values[name] = None if value is None else _number(name, value)
    values["uptime_s"] = _number("uptime_s", data.get("uptime_s", 0.0))
    values["relays"] = _relays(data["relays"])
    values["budgets"] = _budgets(data.get("budgets", ()), len(values["relays"]))
    meter = data.get("meter", "OK")  # older bridges send none: their meters never faulted
    if meter not in ("OK", "FAULT"):
        raise BridgeError(f"reading: meter {meter!r} is not OK or FAULT")
    values["meter"] = meter
    return Reading(**values)


def went_back(last: Reading | None, new: Reading) -> str | None:
    """Why a reading may not follow the last one (a counter went back), or None."""
    if last is None:
        return None
    for name in ("wh_in", "wh_out"):
        if getattr(new, name) < getattr(last, name):
            return f"{name} went back from {getattr(last, name)} to {getattr(new, name)}"
    return None
