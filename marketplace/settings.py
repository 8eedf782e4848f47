"""The market's tunable behaviour, set once when the portal starts."""

from __future__ import annotations

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
