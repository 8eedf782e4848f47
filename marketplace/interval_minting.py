"""What a producer meter's reading can mint on chain, predicted before a batch is sent: the
token's caps (rated power over the signed time since the last minted reading, at most one
MINT_WINDOW_S, and the block-time allowance) mirrored, so a sell the contract would refuse
NO_TOKENS is held back or cut instead of sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MINT_WINDOW_S = 3600  # EnergyToken.MINT_WINDOW_S: the longest a reading mints for


@dataclass(frozen=True)
class MeterMint:
    """A producer meter's mint state on chain: its minted counter and time, its rating in
    chain time, its block-time allowance now, whether its next reading only sets a baseline."""

    last_wh: int
    last_at: int
    rated_w: int
    allowance_wh: int
    baseline_pending: bool

    @property
    def window_wh(self) -> int:
        """The most one reading may mint: rated power over one MINT_WINDOW_S."""
        return self.rated_w * MINT_WINDOW_S // 3600


def mintable_wh(state: MeterMint, closing: dict[str, Any],
                baseline: dict[str, Any] | None) -> int:
    """Wh a sell position's closing reading mints (its baseline setting the counter first
    while the token's baseline is pending), as EnergyToken._draw caps it."""
    if state.baseline_pending:
        if baseline is None:
            return 0  # the contract refuses it NO_BASELINE anyway
        last_wh, last_at = int(baseline["whIn"]), int(baseline["timestamp"])
    else:
        last_wh, last_at = state.last_wh, state.last_at
    at = int(closing["timestamp"])
    if at <= last_at:
        return 0  # stale: minted nothing, still counts
    growth = max(int(closing["whIn"]) - last_wh, 0)
    cap = state.rated_w * min(at - last_at, MINT_WINDOW_S) // 3600
    return min(growth, cap, state.allowance_wh)


def unminted_wh(state: MeterMint, wh_in: int, baseline_wh: int | None) -> int:
    """Generation a meter signed that the chain has not minted and one reading may still
    mint: from the baseline a first position will carry while the token's is pending (the
    counter below it never mints), at most one window's worth."""
    counter = state.last_wh
    if state.baseline_pending:
        counter = wh_in if baseline_wh is None else baseline_wh
    return min(max(wh_in - counter, 0), state.window_wh)
