"""The market's tunable behaviour, set once when the portal starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from marketplace import rules


@dataclass(frozen=True)
class Settings:
    """Tunable market behaviour."""

    limits: rules.Limits = rules.Limits()
    step_wh: int = 5  # delivery reported (and paid) every step_wh
    deal_ttl_s: int = 24 * 3600
    bid_validity_s: int = 3600  # a signed bid can open its deal this long after the deadline
    offline_grace_s: float = 10.0  # a meter offline this long pauses its deal …
    offline_close_s: float = 60.0  # … and this long ends it
    empty_soc: float = 0.01  # a seller's battery at this state of charge ends its deals
    mint_batch_wh: int = 10
    lease_s: float = 5.0  # a settling worker silent this long is replaced by another
    # The bus check (marketplace.bus): buyers' Wh in within sellers' Wh out less the line
    # loss, ± the meters' accuracy and a floor, over windows of this much flow or time. The
    # interval market's sellers bear up to line_loss (IntervalSettlement's maxLineLossBps,
    # fixed at deploy: a sell may be paid down to floor × Wh sent × (1 − line_loss)).
    line_loss: float = 0.05
    meter_accuracy: float = 0.02
    bus_floor_wh: float = 2.0
    bus_window_wh: float = 5.0
    bus_window_s: float = 30.0
    # The interval market (marketplace.intervals): each interval lasts interval_s emulated
    # seconds, interval_s / time_factor on the market clock (time_factor: the emulator's speed,
    # 1 on real boards); pricing "clear" (pay-as-clear) or "bid" (pay-as-bid); a participant
    # settles on chain once settle_wh are unsettled (and at each day's end); a producer's
    # battery holds battery_wh when full.
    interval_s: int = 900
    time_factor: float = 1.0
    pricing: str = "clear"
    settle_wh: int = 1000
    battery_wh: int = 1200

    def max_line_loss_bps(self) -> int:
        """line_loss in basis points, rounded up: the most loss IntervalSettlement lets sellers
        bear (their payout may be this much below floor × Wh sent)."""
        return min(math.ceil(round(self.line_loss * 10_000, 6)), 9_999)

    def escrow_notice_s(self) -> int:
        """The escrow's withdrawal notice: longer than any bid can wait for its deal to open.

        A bid is placed at most max_duration_s before the first deadline, soft close pushes
        the end back at most soft_close_cap_s, and the signed bid opens its deal within
        bid_validity_s after that: a withdrawal asked for after bidding completes only then.
        One second more, so the last second a deal may open is never also the first a
        withdrawal may complete (the order within a block would decide).
        """
        return (self.limits.max_duration_s + self.limits.soft_close_cap_s
                + self.bid_validity_s + 1)
