"""A closed day's books, each read from its own source: meters over serial, chain, store."""

from __future__ import annotations

from typing import Any

from marketplace.contract_enums import MARKETS, DealStatus
from marketplace.ledger import Ledger
from simulation.day import TradingDay
from simulation.journal import ChainJournal
from simulation.reconcile import DayRecord

ZERO = "0x0000000000000000000000000000000000000000"


def read_books(day: TradingDay) -> DayRecord:
    """Read each source on its own: meters over serial, the chain, the store."""
    rt, journal = day.runtime, day.journal
    ledger, store = rt.ledger, rt.store
    addresses = [p["address"] for p in day.people]
    escrow = ledger.addresses()["EnergyEscrow"]
    meters = {}
    for p in day.people:
        reading = rt.bridge.read(p["board"])
        meters[p["board"]] = (reading.wh_in, reading.wh_out)
    journal.poll()
    meter_of = {p["address"]: p["meter_address"] for p in store.participants()}
    baseline = {a["meter"]: a["readingWh"] for a in journal.of("MeterBaseline")}
    return DayRecord(
        participants=[{k: p[k] for k in ("name", "address", "role", "board")}
                      for p in day.people],
        meters=meters,
        line_loss_wh=rt.microgrid.line_loss_wh,
        minted=_sums(journal.of("EnergyMinted"), "owner", "wh"),
        meter_readings={p["address"]: ledger.meter_of(meter_of[p["address"]])[
            "last_reading_wh"] for p in day.people if p["role"] == "producer"},
        baselines={p["address"]: baseline.get(meter_of[p["address"]], 0)
                   for p in day.people if p["role"] == "producer"},
        burned_wh=sum(a["value"] for a in journal.of("Transfer") if a["to"] == ZERO),
        token_balances={a: ledger.token_balance(a) for a in addresses},
        escrow_tokens=ledger.token_balance(escrow),
        total_supply=ledger.total_supply(),
        chain_deals=_chain_deals(ledger, journal),
        store_listings=store.listings(),
        store_deals=store.deals(),
        deposits=_sums(journal.of("Deposited"), "buyer", "amount"),
        withdrawals=_sums(journal.of("Withdrawn"), "buyer", "amount"),
        # Every market's free balance: a move between markets changes neither the sum nor
        # the events' deposits − withdrawals the reconciliation holds it against.
        escrow_free={a: sum(ledger.escrow_free(a, m) for m in MARKETS) for a in addresses},
        escrow_locked={a: ledger.escrow_locked(a) for a in addresses},
        owed={a: ledger.owed_to(a) for a in addresses},
        escrow_eth=ledger.eth_balance(escrow),
        eth_start=day.eth_start,
        eth_end={a: ledger.eth_balance(a) for a in addresses},
        gas_paid=dict(journal.fees),
    )


def _chain_deals(ledger: Ledger, journal: ChainJournal) -> list[dict[str, Any]]:
    """Every escrow deal (state) with its delivery steps (DeliveryReported events)."""
    steps: dict[int, list[tuple[int, int]]] = {}
    for args in journal.of("DeliveryReported"):
        steps.setdefault(args["dealId"], []).append((args["stepWh"], args["stepWei"]))
    deals = []
    for cid in range(1, ledger.deal_count() + 1):
        d = ledger.chain_deal(cid)
        deals.append({
            "id": cid, "offer": "0x" + bytes(d["offer"]).hex(), "buyer": d["buyer"],
            "seller": d["seller"], "price": d["priceWeiPerKWh"], "energy_wh": d["energyWh"],
            "delivered_wh": d["deliveredWh"], "paid_wei": d["paidWei"],
            "refunded_wei": d["lockedWei"] - d["paidWei"],
            "closed": d["status"] == DealStatus.CLOSED,
            "close_reason": int(d["closeReason"]), "steps": steps.get(cid, []),
        })
    return deals


def _sums(events: list[dict[str, Any]], key: str, amount: str) -> dict[str, int]:
    sums: dict[str, int] = {}
    for args in events:
        sums[args[key]] = sums.get(args[key], 0) + args[amount]
    return sums
