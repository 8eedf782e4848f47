"""Interval clearing: a two-sided double auction on integer Wh, pay-as-clear or pay-as-bid.

The traded volume is welfare-maximal: walking bids by cap (highest first) against offers by
floor (lowest first), every Wh whose buyer's cap is at least its seller's floor trades (a Wh at
cap == floor adds no welfare but serves a load, so it trades too). Who among equally priced
orders at the margin gets the last Wh is shared pro rata to their Wh (integer, largest
remainder, ties by address), so no one wins a tie by the spelling of its address.

Pay-as-clear price, inside the crossing range: with Q the traded Wh, D(k) the cap of the k-th
Wh demanded and S(k) the floor of the k-th Wh offered (merit order), every price in
[max(S(Q), D(Q+1)), min(D(Q), S(Q+1))] clears the book: each filled buyer's cap is at or above
it, each filled seller's floor at or below it, and no order left with Wh unfilled would trade at
it (its cap below or its floor above). The price is that range's midpoint, rounded down: it
splits the margin's surplus evenly between the two sides (neither the marginal buyer nor the
marginal seller sets the price alone, so neither gains by shading its limit a little), it is
the same whichever side is long, and it is a pure function of the published book, which
`gridbid verify` recomputes. When demand is rationed at the margin the range collapses to
the rationed buyers' cap (they are indifferent), likewise for rationed sellers at their floor.
gsy-e's two-sided pay-as-clear market also clears at the supply/demand intersection; it
takes one side's rate there, we take the middle of the range for the reasons above.

Pay-as-bid: the same fills, each at its buyer's cap; the seller of that fill receives it.
Wh are paired in merit order (the highest caps with the lowest floors), which keeps every
fill's buyer cap at or above its seller's floor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from marketplace.errors import InvalidInput

RULES = ("clear", "bid")


@dataclass(frozen=True)
class Offer:
    """A seller's Wh for this interval at a floor price (wei/kWh)."""

    seller: str
    wh: int
    floor: int


@dataclass(frozen=True)
class Bid:
    """A buyer's Wh for this interval at a price cap (wei/kWh)."""

    buyer: str
    wh: int
    cap: int


@dataclass(frozen=True)
class Fill:
    """Wh a seller sells a buyer at a price (wei/kWh)."""

    seller: str
    buyer: str
    wh: int
    price: int


@dataclass(frozen=True)
class Clearing:
    """An interval's outcome: the price, the fills, Wh sold per seller and bought per buyer.

    price: the uniform price under pay-as-clear; under pay-as-bid the fills' Wh-weighted
    mean price, rounded down (for charts and history: each fill carries its own price).
    None when nothing trades.
    """

    rule: str
    price: int | None
    fills: list[Fill] = field(default_factory=list)
    sold: dict[str, int] = field(default_factory=dict)
    bought: dict[str, int] = field(default_factory=dict)

    @property
    def volume_wh(self) -> int:
        """Wh traded in the interval."""
        return sum(self.sold.values())


def clear(offers: Iterable[Offer], bids: Iterable[Bid], rule: str = "clear") -> Clearing:
    """Clear one interval's book under rule "clear" (pay-as-clear) or "bid" (pay-as-bid)."""
    if rule not in RULES:
        raise InvalidInput(f"pricing rule must be 'clear' or 'bid', got {rule!r}")
    offers = _checked(list(offers), "seller", "floor")
    bids = _checked(list(bids), "buyer", "cap")
    volume = traded_wh(offers, bids)
    if volume == 0:
        return Clearing(rule, None)
    sold = allocate([(o.seller, o.wh, o.floor) for o in offers], volume, highest_first=False)
    bought = allocate([(b.buyer, b.wh, b.cap) for b in bids], volume, highest_first=True)
    caps = {b.buyer: b.cap for b in bids}
    floors = {o.seller: o.floor for o in offers}
    pairs = _pairs(
        sorted(sold.items(), key=lambda kv: (floors[kv[0]], kv[0])),
        sorted(bought.items(), key=lambda kv: (-caps[kv[0]], kv[0])),
    )
    if rule == "clear":
        price = clearing_price(offers, bids, volume)
        fills = [Fill(s, b, wh, price) for s, b, wh in pairs]
    else:
        fills = [Fill(s, b, wh, caps[b]) for s, b, wh in pairs]
        price = sum(f.price * f.wh for f in fills) // volume
    return Clearing(rule, price, fills, sold, bought)


def _checked(orders: list, who: str, limit: str) -> list:
    """The orders with Wh > 0, after refusing negative or non-integer values and repeats."""
    seen: set[str] = set()
    for order in orders:
        owner = getattr(order, who)
        for name in ("wh", limit):
            value = getattr(order, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{who} {owner}: {name} must be a whole number ≥ 0, "
                                   f"got {value!r}")
        if owner in seen:
            # One standing order per account: two would make the pro-rata split ambiguous.
            raise InvalidInput(f"{who} {owner} appears twice in the interval's book")
        seen.add(owner)
    return [order for order in orders if order.wh > 0]


def _levels(orders: Sequence[tuple[str, int, object]], highest_first: bool) -> list:
    """(price, [(owner, wh)…]) groups in merit order; owners inside a group by address."""
    groups: dict[object, list[tuple[str, int]]] = {}
    for owner, wh, price in orders:
        if wh > 0:
            groups.setdefault(price, []).append((owner, wh))
    return [(price, sorted(groups[price])) for price in sorted(groups, reverse=highest_first)]


def traded_wh(offers: Sequence[Offer], bids: Sequence[Bid]) -> int:
    """The welfare-maximal volume: Wh of the merit order's walk while cap ≥ floor."""
    return _crossing([(o.seller, o.wh, o.floor) for o in offers],
                     [(b.buyer, b.wh, b.cap) for b in bids])


def _crossing(supply: Sequence[tuple], demand: Sequence[tuple]) -> int:
    """Traded Wh of supply (owner, wh, floor) against demand (owner, wh, cap)."""
    asks = [[price, sum(wh for _, wh in group)] for price, group in _levels(supply, False)]
    wants = [[price, sum(wh for _, wh in group)] for price, group in _levels(demand, True)]
    volume = i = j = 0
    while i < len(wants) and j < len(asks) and wants[i][0] >= asks[j][0]:
        step = min(wants[i][1], asks[j][1])
        volume += step
        wants[i][1] -= step
        asks[j][1] -= step
        i += wants[i][1] == 0
        j += asks[j][1] == 0
    return volume


def allocate(orders: Sequence[tuple[str, int, object]], volume: int,
             highest_first: bool) -> dict[str, int]:
    """Share volume Wh over (owner, wh, price) in merit order; the marginal level pro rata."""
    shares: dict[str, int] = {}
    left = volume
    for _price, group in _levels(orders, highest_first):
        if left == 0:
            break
        total = sum(wh for _, wh in group)
        if total <= left:
            shares.update(group)
            left -= total
            continue
        shares.update((owner, wh) for owner, wh in pro_rata(left, group).items() if wh)
        left = 0
    if left:
        raise InvalidInput(f"cannot allocate {volume} Wh: the orders hold {volume - left} Wh")
    return shares


def pro_rata(amount: int, weights: Sequence[tuple[str, int | Fraction]]) -> dict[str, int]:
    """Split an integer amount by weights: floors, then largest remainders, ties by address."""
    total = sum(weight for _, weight in weights)
    if total <= 0:
        raise InvalidInput("cannot share an amount by weights that sum to 0")
    exact = {owner: Fraction(amount) * weight / total for owner, weight in weights}
    shares = {owner: int(value) for owner, value in exact.items()}  # int() floors values ≥ 0
    short = amount - sum(shares.values())
    order = sorted(exact, key=lambda owner: (-(exact[owner] - shares[owner]), owner))
    for owner in order[:short]:
        shares[owner] += 1
    return shares


def _pairs(sellers: list[tuple[str, int]], buyers: list[tuple[str, int]]):
    """Pair sold and bought Wh in the given orders: (seller, buyer, wh) chunks."""
    pairs: list[tuple[str, str, int]] = []
    i = j = 0
    left_s = sellers[0][1] if sellers else 0
    left_b = buyers[0][1] if buyers else 0
    while i < len(sellers) and j < len(buyers):
        step = min(left_s, left_b)
        pairs.append((sellers[i][0], buyers[j][0], step))
        left_s -= step
        left_b -= step
        if left_s == 0:
            i += 1
            left_s = sellers[i][1] if i < len(sellers) else 0
        if left_b == 0:
            j += 1
            left_b = buyers[j][1] if j < len(buyers) else 0
    return pairs


def _unit_prices(orders: Sequence[tuple[int, int]], highest_first: bool, k: int) -> int | None:
    """The price of the k-th Wh (1-based) of (wh, price) orders in merit order; None past end."""
    for wh, price in sorted(orders, key=lambda o: o[1], reverse=highest_first):
        if k <= wh:
            return price
        k -= wh
    return None


def crossing_range(offers: Sequence[Offer], bids: Sequence[Bid], volume: int) -> tuple[int, int]:
    """The prices [low, high] at which volume Wh (> 0, the traded volume) clears the book."""
    supply = [(o.wh, o.floor) for o in offers]
    demand = [(b.wh, b.cap) for b in bids]
    last_floor = _unit_prices(supply, False, volume)
    last_cap = _unit_prices(demand, True, volume)
    next_floor = _unit_prices(supply, False, volume + 1)
    next_cap = _unit_prices(demand, True, volume + 1)
    low = last_floor if next_cap is None else max(last_floor, next_cap)
    high = last_cap if next_floor is None else min(last_cap, next_floor)
    return low, high


def clearing_price(offers: Sequence[Offer], bids: Sequence[Bid], volume: int) -> int:
    """The pay-as-clear price: the crossing range's midpoint, rounded down (module doc)."""
    low, high = crossing_range(offers, bids, volume)
    return (low + high) // 2


def welfare(clearing: Clearing, offers: Iterable[Offer], bids: Iterable[Bid]) -> int:
    """Σ buyers' cap × bought − Σ sellers' floor × sold, in wei/kWh × Wh (÷ 1000 for wei)."""
    caps = {b.buyer: b.cap for b in bids}
    floors = {o.seller: o.floor for o in offers}
    return (sum(caps[buyer] * wh for buyer, wh in clearing.bought.items())
            - sum(floors[seller] * wh for seller, wh in clearing.sold.items()))


def optimum_welfare(offers: Iterable[Offer], bids: Iterable[Bid]) -> int:
    """The best welfare over every integer choice of Wh per order (exhaustive; small books).

    A dynamic programme over the net Wh bought minus sold, trying each quantity of each
    order: it shares nothing with clear()'s merit-order walk, so tests can check one by
    the other.
    """
    best: dict[int, int] = {0: 0}  # net Wh (bought − sold) → best welfare reaching it
    moves = [(b.wh, b.cap) for b in bids] + [(-o.wh, -o.floor) for o in offers]
    for wh, value in moves:
        step = 1 if wh > 0 else -1
        nxt: dict[int, int] = {}
        for net, score in best.items():
            for q in range(0, abs(wh) + 1):
                key, gain = net + step * q, score + value * q
                if nxt.get(key, gain - 1) < gain:
                    nxt[key] = gain
        best = nxt
    return best[0]


def matchable_wh(wanted: Iterable[Bid], available: Iterable[Offer],
                 line_loss: float = 0.0) -> dict[str, int]:
    """Per participant, the Wh a welfare-maximal clearing of the true book would trade.

    wanted: each consumer's true wanted Wh at its cap; available: each producer's true Wh
    above reserve at its floor; line_loss: the share of sent Wh the bus loses (0 ≤ loss < 1).
    A buyer receiving x needs x / (1 − loss) sent, so an offer is cleared as wh × (1 − loss)
    received Wh at floor / (1 − loss) per received Wh. Buyers get Wh received, sellers Wh
    sent (rounded up, within what they have).
    """
    keep = 1 - Fraction(str(line_loss))  # from the decimal text: 0.05 is exactly 1/20
    if not 0 < keep <= 1:
        raise InvalidInput(f"line loss must be at least 0 and below 1, got {line_loss!r}")
    bids = _checked(list(wanted), "buyer", "cap")
    offers = _checked(list(available), "seller", "floor")
    both = {b.buyer for b in bids} & {o.seller for o in offers}
    if both:
        raise InvalidInput(f"{sorted(both)[0]} is both a buyer and a seller in one interval")
    supply = [(o.seller, int(o.wh * keep), Fraction(o.floor) / keep) for o in offers]
    demand = [(b.buyer, b.wh, b.cap) for b in bids]
    volume = _crossing(supply, demand)
    received = allocate(demand, volume, highest_first=True)
    delivered = allocate(supply, volume, highest_first=False)
    wh_of = {o.seller: o.wh for o in offers}
    sent = {s: min(wh_of[s], math.ceil(wh / keep)) for s, wh in delivered.items()}
    return {**received, **sent}
