"""Positions of the community market as IntervalSettlement settles them (shared with the engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.bindings import buy_order_tuple, positions_hash, reading_tuple, sell_order_tuple
from firmware_bridge.signing import SignedReading

_ZERO_ADDRESS = "0x" + "00" * 20
_NO_READING = (_ZERO_ADDRESS, 0, 0, 0)  # an absent baseline (with an empty signature)


def _reading(reading: SignedReading | None) -> tuple[tuple, bytes]:
    if reading is None:
        return _NO_READING, b""
    return reading_tuple(reading.struct()), bytes(reading.signature)


@dataclass(frozen=True)
class _Position:
    """What both sides' positions hold: order, readings and the claimed fill."""

    order: dict[str, Any]  # the signed order's typed-data message fields
    order_sig: bytes  # may be b"" once the contract has seen the order (orderState verified)
    closing: SignedReading  # the meter's reading at the end of to_interval
    from_interval: int
    to_interval: int
    filled_intervals: int
    wh: int
    wei: int  # paid by a buyer, received by a seller
    baseline: SignedReading | None = None  # required on an account's first position

    def _tuple(self, order: tuple) -> tuple:
        closing, closing_sig = _reading(self.closing)
        baseline, baseline_sig = _reading(self.baseline)
        fill = (self.from_interval, self.to_interval, self.filled_intervals, self.wh, self.wei)
        return (order, bytes(self.order_sig), closing, closing_sig, baseline, baseline_sig, fill)


@dataclass(frozen=True)
class BuyPosition(_Position):
    """A buyer's netted position over intervals from_interval..to_interval."""

    @property
    def account(self) -> str:
        """The buyer."""
        return self.order["buyer"]

    def to_tuple(self) -> tuple:
        """The BuyPosition tuple settle() takes."""
        return self._tuple(buy_order_tuple(self.order))


@dataclass(frozen=True)
class SellPosition(_Position):
    """A seller's netted position over intervals from_interval..to_interval."""

    @property
    def account(self) -> str:
        """The seller."""
        return self.order["seller"]

    def to_tuple(self) -> tuple:
        """The SellPosition tuple settle() takes."""
        return self._tuple(sell_order_tuple(self.order))


@dataclass(frozen=True)
class Batch:
    """One settlement transaction: positions through an interval, lot sellers' mint readings."""

    through_interval: int
    buys: list[BuyPosition] = field(default_factory=list)
    sells: list[SellPosition] = field(default_factory=list)
    mints: list[SignedReading] = field(default_factory=list)
    operator_sig: bytes = b""  # the operator's Batch signature; empty when it sends itself

    def positions_hash(self) -> bytes:
        """What the operator's Batch signature names (IntervalSettlement.positionsHash)."""
        mints = [_reading(r) for r in self.mints]
        return positions_hash([p.to_tuple() for p in self.buys],
                              [p.to_tuple() for p in self.sells],
                              [r for r, _ in mints], [s for _, s in mints])

    def to_tuple(self) -> tuple:
        """The Batch tuple settle() takes."""
        mints = [_reading(r) for r in self.mints]
        return (self.through_interval, [p.to_tuple() for p in self.buys],
                [p.to_tuple() for p in self.sells], [r for r, _ in mints],
                [s for _, s in mints], bytes(self.operator_sig))

    def with_signature(self, signature: bytes) -> Batch:
        """The same batch carrying the operator's signature (for anyone to send)."""
        return Batch(self.through_interval, self.buys, self.sells, self.mints, bytes(signature))
