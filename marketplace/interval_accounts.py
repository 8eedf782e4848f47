"""An interval's accounts from metered Wh: what each buyer pays, each seller is paid and burns.

The bus pools energy, so no fill is traced from a seller to a buyer. Each buyer is billed
what its meter counted, up to what it bought, at its price (the clearing price, or its cap
under pay-as-bid). Sellers bear the line loss: the buyers' payments, and nothing more, are
split over the sellers pro rata to what their meters sent, up to what each sold (weighted by
the value of its fills, which under pay-as-clear is the same thing); the tokens burned are
what a seller's meter sent, up to what it sold. Integer wei: floors, then the largest
remainders, so the payouts add up to the payments exactly (dust 0) whenever a seller is paid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from marketplace.clearing import RULES, Fill, pro_rata
from marketplace.errors import InvalidInput
from marketplace.rules import cost_wei


@dataclass(frozen=True)
class IntervalAccount:
    """Per-participant billed Wh, paid wei, burned Wh and payout wei of one interval.

    line_loss_wh: Wh burned from sellers that no buyer was billed (Σ burned − Σ billed);
    negative when buyers' meters counted more than sellers' meters sent (meter resolution,
    or energy from outside the fills). dust_wei: payments no seller received (Σ paid −
    Σ payout); fewer wei than there are sellers.
    """

    billed_wh: dict[str, int] = field(default_factory=dict)
    paid_wei: dict[str, int] = field(default_factory=dict)
    burned_wh: dict[str, int] = field(default_factory=dict)
    payout_wei: dict[str, int] = field(default_factory=dict)
    line_loss_wh: int = 0
    dust_wei: int = 0


def account(
    fills: Iterable[Fill],
    metered_in: Mapping[str, int],
    metered_out: Mapping[str, int],
    rule: str = "clear",
) -> IntervalAccount:
    """The interval's accounts from its fills and each meter's Wh in (buyers) / out (sellers).

    A participant missing from metered_in/metered_out counts 0: no signed reading, nothing
    proven delivered.
    """
    fills = list(fills)
    prices = _buyer_prices(fills, rule)
    bought = _totals(fills, "buyer")
    sold = _totals(fills, "seller")
    billed = {b: min(_metered(metered_in, b), wh) for b, wh in bought.items()}
    paid = {b: cost_wei(prices[b], wh) for b, wh in billed.items()}
    burned = {s: min(_metered(metered_out, s), wh) for s, wh in sold.items()}
    payout = split_payments(sum(paid.values()), fills, sold, burned)
    return IntervalAccount(
        billed_wh=billed,
        paid_wei=paid,
        burned_wh=burned,
        payout_wei=payout,
        line_loss_wh=sum(burned.values()) - sum(billed.values()),
        dust_wei=sum(paid.values()) - sum(payout.values()),
    )


def split_payments(total_wei: int, fills: list[Fill], sold: Mapping[str, int],
                   burned: Mapping[str, int]) -> dict[str, int]:
    """Share total_wei over sellers by the value of their fills × the share they delivered.

    If no seller's meter counted anything yet buyers paid (meters count whole Wh: a seller's
    few Wh can round to 0 while its buyer's round up), the payments are shared by the value
    sold, so they are never left unpaid in the pool.
    """
    value = {s: 0 for s in sold}
    for fill in fills:
        value[fill.seller] += fill.price * fill.wh
    weights = [(s, Fraction(value[s] * burned[s], sold[s])) for s in sorted(sold)]
    if not any(w for _, w in weights):
        weights = [(s, Fraction(value[s])) for s in sorted(sold)]
    if total_wei == 0 or not any(w for _, w in weights):
        return {s: 0 for s in sold}
    return pro_rata(total_wei, weights)


def _buyer_prices(fills: list[Fill], rule: str) -> dict[str, int]:
    """Each buyer's one price (wei/kWh); refuses fills that give a buyer two."""
    if rule not in RULES:
        raise InvalidInput(f"pricing rule must be 'clear' or 'bid', got {rule!r}")
    prices: dict[str, int] = {}
    for fill in fills:
        if fill.wh <= 0 or fill.price < 0:
            raise InvalidInput(f"fill {fill} has no Wh or a negative price")
        if prices.setdefault(fill.buyer, fill.price) != fill.price:
            raise InvalidInput(f"buyer {fill.buyer} has fills at two prices")
    if rule == "clear" and len(set(prices.values())) > 1:
        raise InvalidInput("pay-as-clear fills must all be at the one clearing price")
    return prices


def _totals(fills: list[Fill], side: str) -> dict[str, int]:
    """Wh per seller or per buyer."""
    totals: dict[str, int] = {}
    for fill in fills:
        owner = getattr(fill, side)
        totals[owner] = totals.get(owner, 0) + fill.wh
    return totals


def _metered(metered: Mapping[str, int], owner: str) -> int:
    """A meter's Wh over the interval (0 if none); a negative count is refused."""
    wh = metered.get(owner, 0)
    if isinstance(wh, bool) or not isinstance(wh, int) or wh < 0:
        raise InvalidInput(f"metered Wh of {owner} must be a whole number ≥ 0, got {wh!r}")
    return wh
