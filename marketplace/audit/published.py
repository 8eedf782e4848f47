"""The published intervals of the community market: GET /api/intervals/<n>, read back typed.

Each interval carries its offers and bids, the signed standing orders they came from, the
fills with what was metered and paid, and the meters' signed readings at both boundaries
(SPEC "Publication + verify"). `parse_interval` refuses what is malformed with IntervalError,
so the checks in intervals.py only ever see whole, typed intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from contracts.bindings import BUY_ORDER, SELL_ORDER
from firmware_bridge.errors import BridgeError
from firmware_bridge.signing import SignedReading

SIDES = ("sell", "buy")
MAX_UINT = 2**256 - 1


class IntervalError(ValueError):
    """A published interval (or one entry of it) is not in the published format."""


@dataclass(frozen=True)
class PublishedOrder:
    """A standing order as its owner signed it (EIP-712 SellOrder or BuyOrder, typed)."""

    kind: str  # "sell" | "buy"
    order: dict[str, Any]
    signature: bytes

    @property
    def owner(self) -> str:
        """The seller or buyer the order names."""
        return self.order["seller" if self.kind == "sell" else "buyer"]


@dataclass(frozen=True)
class PublishedFill:
    """One participant's fill in an interval and what its meter counted and it paid/received."""

    address: str
    side: str  # "sell" | "buy"
    wh: int
    price_wei: int
    metered_wh: int
    paid_wei: int  # a buyer's payment, a seller's payout
    billed_wh: int | None = None  # a buyer's billed, a seller's burned Wh (when published)


@dataclass(frozen=True)
class PublishedInterval:
    """One cleared interval as the portal published it."""

    n: int
    start: float  # market clock, unix seconds
    end: float
    pricing: str  # "clear" | "bid"
    status: str  # "open" (cleared, not yet accounted) | "accounted"
    day: int | None  # the emulated day (daily budgets), when published
    price_wei: int | None  # None when nothing cleared
    offers: tuple[tuple[str, int, int], ...]  # (seller, wh, floor wei/kWh)
    bids: tuple[tuple[str, int, int], ...]  # (buyer, wh, cap wei/kWh)
    orders: tuple[PublishedOrder, ...]
    fills: tuple[PublishedFill, ...]
    start_readings: tuple[SignedReading, ...]
    end_readings: tuple[SignedReading, ...]

    def order_of(self, kind: str, owner: str) -> PublishedOrder | None:
        """The published order of that kind by that owner (the last one if several)."""
        found = [o for o in self.orders if o.kind == kind and o.owner == owner]
        return found[-1] if found else None


def _int(value: object, what: str, top: int = MAX_UINT) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise IntervalError(f"{what} {value!r} is not an integer")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise IntervalError(f"{what} {value!r} is not an integer")
    number = int(value)
    if not 0 <= number <= top:
        raise IntervalError(f"{what} {value!r} is not an integer 0..{top}")
    return number


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise IntervalError(f"{what} {value!r} is not an address")
    return to_checksum_address(value)


def _signature(value: object, what: str) -> bytes:
    try:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError(value)
        return bytes.fromhex(value[2:])
    except ValueError as err:
        raise IntervalError(f"{what} {value!r} is not 0x-hex") from err


def parse_order(entry: object, what: str) -> PublishedOrder:
    """A published {kind, order, signature}: the order typed as its owner signed it."""
    if not isinstance(entry, Mapping) or entry.get("kind") not in SIDES:
        raise IntervalError(f"{what} is not an object with kind 'sell' or 'buy'")
    kind, message = entry["kind"], entry.get("order")
    if not isinstance(message, Mapping):
        raise IntervalError(f"{what}: order is not an object")
    ((_, fields),) = (SELL_ORDER if kind == "sell" else BUY_ORDER).items()
    typed = {}
    for field in fields:
        name, type_ = field["name"], field["type"]
        where = f"{what} {name}"
        typed[name] = (_address(message.get(name), where) if type_ == "address" else
                       _int(message.get(name), where, 2 ** int(type_.removeprefix("uint")) - 1))
    return PublishedOrder(kind, typed, _signature(entry.get("signature"), f"{what} signature"))


def _fill(entry: object, what: str) -> PublishedFill:
    if not isinstance(entry, Mapping) or entry.get("side") not in SIDES:
        raise IntervalError(f"{what} is not an object with side 'sell' or 'buy'")
    price = entry.get("price_wei")
    return PublishedFill(
        _address(entry.get("address"), f"{what} address"), entry["side"],
        _int(entry.get("wh"), f"{what} wh"),
        0 if price is None else _int(price, f"{what} price_wei"),
        _int(entry.get("metered_wh") or 0, f"{what} metered_wh"),
        _int(entry.get("paid_wei") or 0, f"{what} paid_wei"),
        None if entry.get("billed_wh") is None else _int(entry["billed_wh"],
                                                         f"{what} billed_wh"))


def _readings(entries: object, what: str) -> tuple[SignedReading, ...]:
    if not isinstance(entries, list):
        raise IntervalError(f"{what} is not a list")
    try:
        return tuple(SignedReading.from_json(entry) for entry in entries)
    except BridgeError as err:
        raise IntervalError(f"{what}: {err}") from err


def _list(data: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise IntervalError(f"{what}: {key} is not a list")
    return value


def parse_interval(data: object) -> PublishedInterval:
    """One GET /api/intervals/<n> answer, typed; IntervalError says what is malformed."""
    if not isinstance(data, Mapping):
        raise IntervalError("a published interval is not an object")
    n = _int(data.get("n"), "interval n")
    what = f"interval {n}"
    if data.get("pricing") not in ("clear", "bid"):
        raise IntervalError(f"{what}: pricing {data.get('pricing')!r} is not 'clear' or 'bid'")
    try:
        start, end = float(data["start"]), float(data["end"])
    except (KeyError, TypeError, ValueError) as err:
        raise IntervalError(f"{what}: start and end are not numbers") from err
    readings = data.get("readings")
    if not isinstance(readings, Mapping):
        raise IntervalError(f"{what}: readings is not an object with start and end")
    offers = tuple((_address(o.get("seller"), f"{what} offer seller"),
                    _int(o.get("wh"), f"{what} offer wh"), _int(o.get("floor"),
                                                                 f"{what} offer floor"))
                   for o in _objects(_list(data, "offers", what), f"{what} offer"))
    bids = tuple((_address(b.get("buyer"), f"{what} bid buyer"),
                  _int(b.get("wh"), f"{what} bid wh"), _int(b.get("cap"), f"{what} bid cap"))
                 for b in _objects(_list(data, "bids", what), f"{what} bid"))
    price = data.get("price_wei")
    status = data.get("status", "accounted")
    if status not in ("open", "accounted"):
        raise IntervalError(f"{what}: status {status!r} is not 'open' or 'accounted'")
    emulated = data.get("emulated_start")
    day = None if emulated is None else _int(emulated, f"{what} emulated_start") // 86400
    return PublishedInterval(
        n, start, end, data["pricing"], status, day,
        None if price is None else _int(price, f"{what} price"),
        offers, bids,
        tuple(parse_order(o, f"{what} order {i}")
              for i, o in enumerate(_list(data, "orders", what))),
        tuple(_fill(f, f"{what} fill {i}") for i, f in enumerate(_list(data, "fills", what))),
        _readings(readings.get("start"), f"{what} start readings"),
        _readings(readings.get("end"), f"{what} end readings"))


def _objects(entries: list[Any], what: str) -> list[Mapping[str, Any]]:
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise IntervalError(f"{what} is not an object")
    return entries


def parse_intervals(entries: list[object]) -> list[PublishedInterval]:
    """Published intervals in order of n; one published twice is malformed."""
    found: dict[int, PublishedInterval] = {}
    for entry in entries:
        interval = parse_interval(entry)
        if interval.n in found:
            raise IntervalError(f"interval {interval.n} is published twice")
        found[interval.n] = interval
    return [found[n] for n in sorted(found)]
