"""The operator's signed settlement batches as the portal publishes them, rebuilt for anyone to
send (`gridbid settle-interval`): GET /api/intervals/batches entries back into a
marketplace.positions.Batch carrying the operator's Batch signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.bindings import batch_typed_data, recover_typed
from firmware_bridge.errors import BridgeError
from firmware_bridge.signing import SignedReading
from marketplace.audit.published import IntervalError, parse_order
from marketplace.positions import Batch, BuyPosition, SellPosition


class BatchError(IntervalError):
    """A published batch is not in the published format (or carries no operator signature)."""


def _reading(value: object, what: str) -> SignedReading:
    try:
        return SignedReading.from_json(value)
    except BridgeError as err:
        raise BatchError(f"{what}: {err}") from err


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BatchError(f"{what} {value!r} is not a whole number")
    return int(value)


def _position(entry: object, what: str) -> BuyPosition | SellPosition:
    if not isinstance(entry, Mapping) or entry.get("side") not in ("buy", "sell"):
        raise BatchError(f"{what} is not an object with side 'buy' or 'sell'")
    published = parse_order({"kind": entry["side"], "order": entry.get("order"),
                             "signature": entry.get("order_sig") or "0x"}, what)
    baseline = entry.get("baseline")
    made = BuyPosition if entry["side"] == "buy" else SellPosition
    return made(
        order=published.order, order_sig=published.signature,
        closing=_reading(entry.get("closing"), f"{what} closing"),
        from_interval=_count(entry.get("from_interval"), f"{what} from_interval"),
        to_interval=_count(entry.get("to_interval"), f"{what} to_interval"),
        filled_intervals=_count(entry.get("filled_intervals"), f"{what} filled_intervals"),
        wh=_count(entry.get("wh"), f"{what} wh"), wei=_count(entry.get("wei"), f"{what} wei"),
        baseline=None if baseline is None else _reading(baseline, f"{what} baseline"))


def published_batch(entry: object) -> Batch:
    """One published batch as settle() takes it, with the operator's signature."""
    if not isinstance(entry, Mapping):
        raise BatchError("a published batch is not an object")
    what = f"batch {entry.get('id')!r}"
    body = entry.get("batch")
    if not isinstance(body, Mapping) or not isinstance(body.get("positions"), list):
        raise BatchError(f"{what}: batch is not an object with a positions list")
    signature = entry.get("operator_sig")
    if not isinstance(signature, str) or not signature.startswith("0x") or len(signature) < 4:
        raise BatchError(f"{what} carries no operator signature: only the operator can send it")
    try:
        operator_sig = bytes.fromhex(signature[2:])
    except ValueError as err:
        raise BatchError(f"{what}: operator_sig is not 0x-hex") from err
    positions = [_position(p, f"{what} position {i}") for i, p in enumerate(body["positions"])]
    mints = [_reading(r, f"{what} mint") for r in body.get("mints") or []]
    return Batch(_count(entry.get("through_n"), f"{what} through_n"),
                 [p for p in positions if isinstance(p, BuyPosition)],
                 [p for p in positions if isinstance(p, SellPosition)], mints, operator_sig)


def batch_signer(batch: Batch, domain: Mapping[str, Any]) -> str | None:
    """Who signed the batch's Batch(throughInterval, positionsHash) in the settlement's domain."""
    message = batch_typed_data(batch.through_interval, batch.positions_hash(), dict(domain))
    return recover_typed(message, batch.operator_sig)
