"""The books of a day: meters, tokens and Ether from independent sources, side by side.

Three sources that never copy each other's numbers: the meter boards' counters (read over
serial), the chain (events, contract state, balances, receipts) and the market's store
(listings, deals, baselines). Each check puts two of them against each other and says how
far apart they may be: 0 Wh for energy and tokens, 0 wei for balances, and at most 1 wei per
delivery step where the escrow rounds a payment down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from marketplace.states import ListingState


@dataclass
class DayRecord:
    """Everything read at the end of a day, each field from the source named."""

    participants: list[dict[str, Any]]  # name, address, role, board
    meters: dict[str, tuple[float, float]]  # board -> (Wh in, Wh out), read over serial
    line_loss_wh: float  # the emulated bus's own count of energy turned into heat
    minted: dict[str, int]  # owner -> Σ EnergyMinted.wh (events)
    meter_readings: dict[str, int]  # owner -> the token registry's last minted reading (state)
    baselines: dict[str, int]  # owner -> its meter's MeterBaseline reading (events): not minted
    burned_wh: int  # Σ Transfer(escrow → 0) (events)
    token_balances: dict[str, int]  # address -> balanceOf (state)
    escrow_tokens: int  # tokens the escrow still holds (state)
    total_supply: int  # (state)
    chain_deals: list[dict[str, Any]]  # getDeal (state) plus its DeliveryReported steps (events)
    store_listings: list[dict[str, Any]]
    store_deals: list[dict[str, Any]]
    deposits: dict[str, int]  # Σ Deposited (events)
    withdrawals: dict[str, int]  # Σ Withdrawn (events)
    escrow_free: dict[str, int]  # Σ over the escrow's markets (state)
    escrow_locked: dict[str, int]  # (state)
    owed: dict[str, int]  # payments the escrow could not push (state)
    escrow_eth: int  # the escrow contract's Ether balance (state)
    eth_start: dict[str, int]  # balances before the day (state)
    eth_end: dict[str, int]  # balances after it (state)
    gas_paid: dict[str, int]  # Σ gasUsed × effectiveGasPrice of the day's transactions (receipts)


@dataclass
class Check:
    """Two independent figures that must agree within a tolerance."""

    what: str
    left: int | float
    right: int | float
    unit: str
    tolerance: float = 0
    note: str = ""

    @property
    def diff(self) -> int | float:
        """left − right."""
        return self.left - self.right

    @property
    def ok(self) -> bool:
        """Whether the two agree within the tolerance."""
        return abs(self.diff) <= self.tolerance + 1e-9


@dataclass
class Reconciliation:
    """Per-participant rows, a total row, the checks, and the energy balance of the bus."""

    rows: list[dict[str, Any]]
    total: dict[str, Any]
    checks: list[Check]
    bus: dict[str, float]
    deals: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # simulation.figures.day_figures

    @property
    def ok(self) -> bool:
        """Whether every check holds."""
        return all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        """The checks that do not hold."""
        return [c for c in self.checks if not c.ok]


COLUMNS = [
    ("generated_wh", "generated Wh (meter)"),
    ("minted_wh", "minted Wh (chain)"),
    ("listed_wh", "listed Wh (store)"),
    ("sold_wh", "sold Wh (chain)"),
    ("delivered_wh", "delivered Wh (chain)"),
    ("meter_out_wh", "seller meter out Wh"),
    ("meter_in_wh", "buyer meter in Wh"),
    ("burned_wh", "tokens burned Wh"),
    ("tokens_left_wh", "tokens held Wh"),
    ("paid_wei", "Ether paid (wei)"),
    ("received_wei", "Ether received (wei)"),
    ("gas_wei", "gas (wei)"),
]


def reconcile(day: DayRecord) -> Reconciliation:
    """Put the day's sources against each other; rows per participant and every check."""
    checks: list[Check] = []
    deals = _deal_lines(day, checks)
    rows = [_row(day, p, deals, checks) for p in day.participants]
    total = {key: sum(r[key] for r in rows) for key, _ in COLUMNS}
    # Each delivery is in its seller's row and its buyer's: count it once.
    total["delivered_wh"] = sum(r["delivered_wh"] for r in rows if r["role"] == "producer")
    total["name"], total["role"] = "total", ""
    bus = _bus(day, checks)
    _token_supply(day, total, checks)
    _escrow_ether(day, checks)
    return Reconciliation(rows, total, checks, bus, deals)


def _deal_lines(day: DayRecord, checks: list[Check]) -> list[dict[str, Any]]:
    """Each chain deal against its store row, its steps and the buyer meter's count."""
    stored = {d["chain_deal_id"]: d for d in day.store_deals if d["chain_deal_id"]}
    draws = _meter_draws(day)
    lines = []
    for deal in day.chain_deals:
        cid, row = deal["id"], stored.get(deal["id"])
        label = f"deal {cid}"
        steps_wh = sum(wh for wh, _ in deal["steps"])
        steps_wei = sum(wei for _, wei in deal["steps"])
        checks.append(Check(f"{label}: delivered, escrow state vs Σ delivery steps (events)",
                            deal["delivered_wh"], steps_wh, "Wh"))
        checks.append(Check(f"{label}: paid, escrow state vs Σ step payments (events)",
                            deal["paid_wei"], steps_wei, "wei"))
        exact = Fraction(deal["price"] * deal["delivered_wh"], 1000)
        checks.append(Check(
            f"{label}: paid vs price × delivered", float(exact), deal["paid_wei"], "wei",
            tolerance=max(1, len(deal["steps"])),
            note="the escrow pays cumulatively, rounded down: under 1 wei per deal",
        ))
        if row is not None:
            checks.append(Check(f"{label}: delivered, chain vs store",
                                deal["delivered_wh"], row["delivered_wh"], "Wh"))
            checks.append(Check(f"{label}: paid, chain vs store",
                                deal["paid_wei"], int(row["paid_wei"]), "wei"))
        draw = draws.get(cid)
        if draw is not None:
            # What the buyer's meter counted, in whole Wh, up to the energy bought.
            billable = math.floor(min(draw, deal["energy_wh"]) + 1e-6)
            checks.append(Check(
                f"{label}: billed vs buyer meter (whole Wh, up to the energy bought)",
                deal["delivered_wh"], billable, "Wh",
            ))
        lines.append({
            **deal, "steps_count": len(deal["steps"]), "meter_wh": draw,
            "rounding_wei": float(exact - deal["paid_wei"]),
            "opened_at": row.get("opened") if row else None,
        })
    return lines


def _meter_draws(day: DayRecord) -> dict[int, float]:
    """Wh each deal's buyer meter counted: from its baseline to the next deal's, or the end.

    A consumer's relay is closed only during its own deal (one at a time), so its counter
    moves only then: consecutive baselines bracket each deal's energy exactly.
    """
    boards = {p["address"]: p["board"] for p in day.participants}
    by_buyer: dict[str, list[dict[str, Any]]] = {}
    for row in day.store_deals:
        if row["chain_deal_id"] and row["baseline_wh"] is not None:
            by_buyer.setdefault(row["buyer"], []).append(row)
    draws = {}
    for buyer, rows in by_buyer.items():
        rows.sort(key=lambda r: r["baseline_wh"])
        ends = [r["baseline_wh"] for r in rows[1:]] + [day.meters[boards[buyer]][0]]
        for row, end in zip(rows, ends, strict=True):
            draws[row["chain_deal_id"]] = end - row["baseline_wh"]
    return draws


def _row(
    day: DayRecord, who: dict[str, Any], deals: list[dict[str, Any]], checks: list[Check]
) -> dict[str, Any]:
    address, name = who["address"], who["name"]
    wh_in, wh_out = day.meters[who["board"]]
    as_seller = [d for d in deals if d["seller"] == address]
    as_buyer = [d for d in deals if d["buyer"] == address]
    producer = who["role"] == "producer"
    row = {
        "name": name, "role": who["role"],
        # What the meter counted since its enrollment's baseline reading, which mints nothing.
        "generated_wh": math.floor(wh_in) - day.baselines.get(address, 0) if producer else 0,
        "minted_wh": day.minted.get(address, 0),
        "listed_wh": sum(x["energy_wh"] for x in day.store_listings if x["seller"] == address),
        "sold_wh": sum(d["energy_wh"] for d in as_seller),
        "delivered_wh": sum(d["delivered_wh"] for d in (as_seller if producer else as_buyer)),
        "meter_out_wh": round(wh_out, 3) if producer else 0,
        "meter_in_wh": 0 if producer else round(wh_in, 3),
        "burned_wh": sum(d["delivered_wh"] for d in as_seller),
        "tokens_left_wh": day.token_balances.get(address, 0),
        "paid_wei": sum(d["paid_wei"] for d in as_buyer),
        "received_wei": sum(d["paid_wei"] for d in as_seller),
        "gas_wei": day.gas_paid.get(address, 0),
    }
    sold_store = sum(x["energy_wh"] for x in day.store_listings
                     if x["seller"] == address and x["status"] == ListingState.SOLD)
    if producer:
        checks.append(Check(f"{name}: minted (events) vs generated (meter, whole Wh)",
                            row["minted_wh"], row["generated_wh"], "Wh"))
        checks.append(Check(f"{name}: minted (events) vs the token's meter registry (state)",
                            row["minted_wh"],
                            day.meter_readings.get(address, 0) - day.baselines.get(address, 0),
                            "Wh"))
        checks.append(Check(f"{name}: sold, store listings vs escrow deals",
                            sold_store, row["sold_wh"], "Wh"))
        checks.append(Check(f"{name}: tokens held (state) vs minted − delivered (events)",
                            row["tokens_left_wh"], row["minted_wh"] - row["burned_wh"], "Wh"))
        delta = day.eth_end[address] - day.eth_start[address]
        owed = day.owed.get(address, 0)
        checks.append(Check(f"{name}: Ether balance change + gas (state, receipts) vs "
                            "payments received (events)",
                            delta + row["gas_wei"], row["received_wei"] - owed, "wei"))
    else:
        escrow = day.escrow_free.get(address, 0) + day.escrow_locked.get(address, 0)
        net = day.deposits.get(address, 0) - day.withdrawals.get(address, 0)
        checks.append(Check(f"{name}: escrow balance (state) vs deposits − payments (events)",
                            escrow, net - row["paid_wei"], "wei"))
        spent = day.eth_start[address] - day.eth_end[address]
        checks.append(Check(f"{name}: Ether spent (state) vs deposits + gas (events, receipts)",
                            spent, net + row["gas_wei"], "wei"))
    return row


def _bus(day: DayRecord, checks: list[Check]) -> dict[str, float]:
    """Seller meters against buyer meters: the bus's loss, and what is left as noise."""
    roles = {p["board"]: p["role"] for p in day.participants}
    out = sum(day.meters[b][1] for b, r in roles.items() if r == "producer")
    into = sum(day.meters[b][0] for b, r in roles.items() if r == "consumer")
    residual = out - into - day.line_loss_wh
    # Each counter is read over serial with 3 decimals: half a mWh of rounding per board.
    rounding = 0.0005 * len(roles) + 1e-6
    checks.append(Check(
        "bus: seller meters out − buyer meters in vs the bus's line loss", out - into,
        day.line_loss_wh, "Wh", tolerance=rounding,
        note="the rest is the meters' 3-decimal rounding on the serial line",
    ))
    return {"seller_out_wh": out, "buyer_in_wh": into, "line_loss_wh": day.line_loss_wh,
            "loss_pct": 100 * (out - into) / out if out else 0.0, "residual_wh": residual,
            "rounding_bound_wh": rounding}


def _token_supply(day: DayRecord, total: dict[str, Any], checks: list[Check]) -> None:
    checks.append(Check("tokens: Σ minted − Σ burned (events) vs total supply (state)",
                        total["minted_wh"] - day.burned_wh, day.total_supply, "Wh"))
    checks.append(Check("tokens: burned (Transfer to 0, events) vs delivered (escrow state)",
                        day.burned_wh, total["burned_wh"], "Wh"))
    checks.append(Check("tokens: total supply vs Σ balances (state)", day.total_supply,
                        sum(day.token_balances.values()) + day.escrow_tokens, "Wh"))
    checks.append(Check("tokens: held by the escrow once every deal closed", day.escrow_tokens,
                        0, "Wh"))


def _escrow_ether(day: DayRecord, checks: list[Check]) -> None:
    held = (sum(day.escrow_free.values()) + sum(day.escrow_locked.values())
            + sum(day.owed.values()))
    checks.append(Check("Ether: the escrow's balance vs free + locked + owed (state)",
                        day.escrow_eth, held, "wei"))
