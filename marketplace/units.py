"""Amounts as a person reads them: ETH with sensible decimals, prices per kWh, energy in Wh.

One unit system everywhere a person looks (the pages' util.js follows the same rules): Ether in
ETH (never wei), energy in Wh with kWh beside it from 1 kWh on, prices in ETH per kWh.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

WEI_PER_ETH = 10**18
SIGNIFICANT = 6  # enough to tell two amounts of a refusal apart, short enough to read


def eth(wei: int, rounding: str = "down") -> str:
    """wei as "0.0006 ETH": up to SIGNIFICANT significant digits, never a non-zero shown as 0.

    rounding "down" suits what a person has, "up" what something needs, so that a refusal's
    "you have X; this needs Y" never reads as if X were enough.
    """
    return f"{eth_number(wei, rounding)} ETH"


def eth_number(wei: int, rounding: str = "down") -> str:
    """The number part of eth(): decimal ETH, digits grouped by commas, no trailing zeros."""
    if wei == 0:
        return "0"
    sign, wei = ("-", -wei) if wei < 0 else ("", wei)
    value = Decimal(wei) / WEI_PER_ETH  # exact: the context's 28 digits hold any uint128
    digits = len(str(wei // WEI_PER_ETH)) if wei >= WEI_PER_ETH else 0
    # Whole ETH are never rounded away; below 1 ETH keep SIGNIFICANT digits after the zeros.
    places = max(0, SIGNIFICANT - digits) if digits else (
        SIGNIFICANT + len(str(WEI_PER_ETH)) - len(str(wei)) - 1)
    places = min(places, 18)
    quantum = Decimal(1).scaleb(-places)
    shown = value.quantize(quantum, ROUND_CEILING if rounding == "up" else ROUND_FLOOR)
    text = f"{shown:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return sign + text


def price(wei_per_kwh: int) -> str:
    """A price as "0.01 ETH/kWh"."""
    return f"{eth_number(wei_per_kwh)} ETH/kWh"


def energy(wh: int) -> str:
    """Energy as "30 Wh", or "1,500 Wh (1.5 kWh)" from 1 kWh on."""
    if abs(wh) < 1000:
        return f"{wh:,} Wh"
    kwh = f"{wh / 1000:,.3f}".rstrip("0").rstrip(".")
    return f"{wh:,} Wh ({kwh} kWh)"
