"""An interval's accounts from metered Wh: what each buyer pays, each seller is paid and burns.

The bus pools energy, so no fill is traced from a seller to a buyer. Each buyer is billed
what its meter counted, up to what it bought, at its price (the clearing price, or its cap
under pay-as-bid). Sellers bear the line loss: the buyers' payments, and nothing more, are
split over the sellers pro rata to what their meters sent, up to what each sold (weighted by
the value of its fills, which under pay-as-clear is the same thing); the tokens burned are
what a seller's meter sent, up to what it sold. Integer wei: floors, then the largest
remainders, so the payouts add up to the payments exactly (dust 0) whenever a seller is paid.

Given the sellers' floors and the settlement's line loss bound, a seller's burned Wh are also
capped at what its payout covers at floor × (1 − bound) (max_burn_wh): when the bus lost more
than the bound, the seller keeps tokens rather than send a sell the contract refuses.
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
    floors: Mapping[str, int] | None = None,
    max_loss_bps: int = 0,
) -> IntervalAccount:
    """The interval's accounts from its fills and each meter's Wh in (buyers) / out (sellers).

    A participant missing from metered_in/metered_out counts 0: no signed reading, nothing
    proven delivered. floors (seller → wei/kWh, its order's floor) caps each seller's burned
    Wh at max_burn_wh(payout, floor, max_loss_bps); the payout split is not changed by it.
    """
    fills = list(fills)
    prices = _buyer_prices(fills, rule)
    bought = _totals(fills, "buyer")
    sold = _totals(fills, "seller")
    billed = {b: min(_metered(metered_in, b), wh) for b, wh in bought.items()}
    paid = {b: cost_wei(prices[b], wh) for b, wh in billed.items()}
    burned = {s: min(_metered(metered_out, s), wh) for s, wh in sold.items()}
    payout = split_payments(sum(paid.values()), fills, sold, burned)
    if floors is not None:
        burned = {s: min(wh, max_burn_wh(payout[s], floors[s], max_loss_bps))
                  for s, wh in burned.items()}
    return IntervalAccount(
        billed_wh=billed,
        paid_wei=paid,
        burned_wh=burned,
        payout_wei=payout,
        line_loss_wh=sum(burned.values()) - sum(billed.values()),
        dust_wei=sum(paid.values()) - sum(payout.values()),
    )


def max_burn_wh(payout_wei: int, floor: int, max_loss_bps: int, exact: bool = False) -> int:
    """The most Wh a seller's sell of payout_wei may burn: IntervalSettlement refuses a sell
    paid below floor × wh × (10,000 − max_loss_bps) / 10,000,000 (rounded down).

    Not exact: floor × wh × (10,000 − bps) ≤ payout × 10,000,000, so sums of such fills pass
    too; exact: the contract's own bound for one position.
    """
    if floor <= 0:
        raise InvalidInput(f"a seller's floor must be more than 0 wei/kWh, got {floor}")
    if not 0 <= max_loss_bps < 10_000:
        raise InvalidInput(f"the line loss bound is 0 to 9,999 basis points, got {max_loss_bps}")
    per_wh = floor * (10_000 - max_loss_bps)
    if exact:
        return ((payout_wei + 1) * 10_000_000 - 1) // per_wh
    return payout_wei * 10_000_000 // per_wh


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
