"""What each settle batch of a day carried and cost, from its calldata and its receipt.

A settle transaction's gas cannot be split by the receipt alone; this keeps, per batch, what
a position's cost depends on (first position of an account: baseline and order signature;
later: neither; buy or sell; mint readings riding along; refused positions and why), its
gasUsed against its gas limit and its calldata's size, so bench/sim_gas.py can attribute it.
"""

from __future__ import annotations

from typing import Any

from web3.logs import DISCARD

from marketplace.ledger_intervals import REASONS, SIDES


def describe_settle(ledger: Any, record: Any) -> dict[str, Any]:
    """A mined settle batch: its positions (first or later), mints, outcome and gas."""
    receipt = record.receipt
    data = (record.params or {}).get("data") or "0x"
    raw = bytes(data) if isinstance(data, bytes | bytearray) else bytes.fromhex(str(data)[2:])
    contract = ledger.intervals.contract
    _, args = contract.decode_function_input(raw)
    batch = args["b"] if "b" in args else next(iter(args.values()))
    settled = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?"))
               for e in contract.events.PositionSettled().process_receipt(receipt,
                                                                        errors=DISCARD)}
    refused = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?")):
               REASONS.get(e["args"]["reason"], str(e["args"]["reason"]))
               for e in contract.events.PositionRefused().process_receipt(receipt,
                                                                        errors=DISCARD)}
    minted = ledger.token.events.EnergyMinted().process_receipt(receipt, errors=DISCARD)
    positions = []
    for side, key, owner in (("buy", "buys", "buyer"), ("sell", "sells", "seller")):
        for p in _field(batch, key, 1 if side == "buy" else 2):
            order = _field(p, "order", 0)
            account = _field(order, owner, 0)
            fill = _field(p, "fill", 6)
            positions.append({
                "side": side, "account": account,
                "first": len(_field(p, "baselineSig", 5)) > 0,
                "order_sig": len(_field(p, "orderSig", 1)) > 0,
                "to_interval": int(_field(fill, "toInterval", 1)),
                "intervals": int(_field(fill, "toInterval", 1))
                - int(_field(fill, "fromInterval", 0)) + 1,
                "wh": int(_field(fill, "wh", 3)),
                "outcome": "settled" if (account, side) in settled
                else refused.get((account, side), "?"),
            })
    return {
        "tx": record.tx_hash, "gas_used": int(receipt["gasUsed"]),
        "gas_limit": int((record.params or {}).get("gas") or 0),
        "calldata_bytes": len(raw), "calldata_zero_bytes": raw.count(0),
        "positions": positions, "mints": len(_field(batch, "mints", 3)),
        "minted_events": len(minted),
    }


def _field(value: Any, name: str, index: int) -> Any:
    """A decoded struct's field, by name where web3 gave a dict, else by position."""
    if isinstance(value, dict):
        return value[name]
    return value[index]
