"""The chaos day's books read from outside the portal: the store, the published intervals, the
chain's events and the boards' own counters, each read directly and checked against the others.

Nothing here asks a portal worker what it believes, except the public interval publication
(what anyone may read and check); the store is read with its own SQL, the chain through its
node, the meters over their serial line once the bridges have let go of them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import requests
from web3 import Web3

from contracts.bindings import contract
from firmware_bridge.client import BoardClient
from firmware_bridge.signing import ReadingDomain, SignedReading
from marketplace.ledger_intervals import SIDES
from marketplace.settings import Settings
from simulation.chaos.agents import Ack
from simulation.interval_books import _interval as check_interval  # one published interval
from simulation.reconcile import Check
from web.config import DEFAULTS

# The line-loss bound the portal deploys with (config LINE_LOSS), as its settings round it.
MAX_LOSS_BPS = Settings(line_loss=DEFAULTS["LINE_LOSS"]).max_line_loss_bps()
SIDE_CODES = {name: code for code, name in SIDES.items()}  # IntervalSettlement's Side


class Outside:
    """The day's sources, each opened directly."""

    def __init__(self, store_url: str, chain_url: str, data_dir: Path, urls: Sequence[str]):
        self.store_url = store_url
        self.w3 = Web3(Web3.HTTPProvider(chain_url, request_kwargs={"timeout": 30}))
        self.book = json.loads((data_dir / "contracts.json").read_text())
        self.urls = list(urls)
        self.settlement = contract(self.w3, "IntervalSettlement", self.book["IntervalSettlement"])
        self.escrow = contract(self.w3, "EnergyEscrow", self.book["EnergyEscrow"])

    def sql(self, query: str, *args: Any) -> list[tuple]:
        """Rows of one query on the store."""
        with psycopg.connect(self.store_url, connect_timeout=5) as db:
            return db.execute(query, args).fetchall()

    def settled_events(self) -> list[dict[str, Any]]:
        """Every PositionSettled on chain, oldest first."""
        logs = self.settlement.events.PositionSettled().get_logs(from_block=0)
        return [dict(e["args"]) for e in logs]

    def refusals(self) -> dict[str, dict[str, int]]:
        """PositionRefused on chain: per account, how many of each reason (retried ones too)."""
        from marketplace.ledger_intervals import REASONS

        found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for e in self.settlement.events.PositionRefused().get_logs(from_block=0):
            reason = REASONS.get(e["args"]["reason"], str(e["args"]["reason"]))
            found[e["args"]["account"]][reason] += 1
        return {a: dict(r) for a, r in found.items()}

    def settled_count(self) -> int:
        """How many positions the chain has settled."""
        return len(self.settled_events())

    def cleared(self) -> int | None:
        """The newest interval the store has cleared."""
        return self.sql("SELECT max(n) FROM intervals")[0][0]

    def unsettled(self) -> list[tuple]:
        """Billed fills no batch settled yet, by the store."""
        return self.sql("SELECT n, address, side, billed_wh FROM interval_fills "
                        "WHERE settled_batch IS NULL AND COALESCE(billed_wh, 0) > 0")

    def unaccounted(self) -> list[tuple]:
        """Fills whose interval is not accounted yet (billed unknown), by the store."""
        return self.sql("SELECT n, address, side FROM interval_fills WHERE billed_wh IS NULL")

    def batches(self) -> dict[str, Any]:
        """The store's settle batches by status, and the last errors (for the report)."""
        by_status = dict(self.sql("SELECT status, count(*) FROM interval_batches GROUP BY status"))
        errors = [r[0] for r in self.sql("SELECT error FROM interval_batches WHERE error IS NOT "
                                         "NULL ORDER BY id DESC LIMIT 5")]
        return {"by_status": by_status, "last_errors": errors}

    def published(self, n: int) -> dict[str, Any] | None:
        """Interval n as the portal publishes it, from whichever worker answers."""
        for url in self.urls:
            try:
                answer = requests.get(f"{url}/api/intervals/{n}", timeout=10)
            except requests.RequestException:
                continue
            if answer.status_code == 200:
                return answer.json()
        return None


def read_meters(devices: dict[str, str]) -> dict[str, Any]:
    """Each board's counters, read over its own line (the bridges stopped first)."""
    counters = {}
    for board, device in devices.items():
        client = BoardClient(device, timeout=3.0)
        try:
            reading = client.read()
            counters[board] = {"wh_in": reading.wh_in, "wh_out": reading.wh_out}
        finally:
            client.close()
    return counters


def reconcile(outside: Outside, people: list[dict[str, Any]], acks: list[Ack],
              meters: dict[str, Any]) -> tuple[list[Check], list[dict[str, Any]]]:
    """Every check of the day, and one row per participant."""
    checks: list[Check] = []
    _orders(outside, acks, checks)
    rows = {(p["address"]): p for p in people}
    meter_of = {r[0]: r[1] for r in outside.sql(
        "SELECT address, meter_address FROM participants")}
    domain = ReadingDomain(int(outside.w3.eth.chain_id), outside.book["EnergyToken"])
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    numbers = [r[0] for r in outside.sql("SELECT n FROM intervals ORDER BY n")]
    signed: dict[str, dict[int, tuple[float, float]]] = {}
    for n in numbers:
        view = outside.published(n)
        if view is None:
            checks.append(Check(f"interval {n}: published by a worker", 0, 1, ""))
            continue
        check_interval(view, meter_of, domain, None, checks, sums, MAX_LOSS_BPS)
        _collect(view, signed)
    last_reading = _odometers(signed, checks)
    events = outside.settled_events()
    _no_interval_twice(events, checks)
    refused = outside.refusals()
    table = [{**_row(p, sums, events, meters, meter_of, last_reading, checks),
              "refused": refused.get(p["address"], {})} for p in rows.values()]
    waiting = outside.unaccounted()
    checks.append(Check("store: fills left unaccounted at the end", len(waiting), 0, "fills",
                        note=str(waiting[:5]) if waiting else ""))
    left = outside.unsettled()
    checks.append(Check("store: billed fills left unsettled at the end", len(left), 0, "fills",
                        note=str(left[:5]) if left else ""))
    return checks, table


def _orders(outside: Outside, acks: list[Ack], checks: list[Check]) -> None:
    """Every acknowledged order is in the store, its owner's, and the last one cancelled."""
    stored = {h.lower(): (owner.lower(), status) for h, owner, status in outside.sql(
        "SELECT hash, owner, status FROM standing_orders")}
    found = [a for a in acks if stored.get(a.hash.lower(), ("",))[0] == a.address.lower()]
    missing = [a.hash for a in acks if a not in found]
    checks.append(Check("orders: acknowledged (201) and in the store as their owner's",
                        len(found), len(acks), "orders", note=", ".join(missing[:5])))
    last: dict[str, Ack] = {}
    for ack in acks:
        last[ack.name] = ack
    active = [a.name for a in last.values()
              if stored.get(a.hash.lower(), ("", ""))[1] == "active"]
    checks.append(Check("orders: each participant's last order cancelled at the end",
                        len(active), 0, "orders", note=", ".join(active)))


def _odometers(readings: dict[str, dict[int, tuple[float, float]]],
               checks: list[Check]) -> dict[str, tuple[float, float]]:
    """A meter's signed counters never go back, in the order it signed them (across bridge
    restarts and board reconnects); each meter's last (in, out)."""
    last = {}
    for meter, signed in readings.items():
        counts = [signed[t] for t in sorted(signed)]
        back = sum(1 for a, b in zip(counts, counts[1:], strict=False)
                   if b[0] < a[0] or b[1] < a[1])
        checks.append(Check(f"meter {meter}: signed counters that went back", back, 0,
                            "readings"))
        last[meter] = counts[-1]
    return last


def _collect(view: dict[str, Any], readings: dict[str, dict[int, tuple[float, float]]]) -> None:
    """Every signed reading of a published interval, by meter and signing time."""
    for data in view["readings"]["start"] + view["readings"]["end"]:
        reading = SignedReading.from_json(data)
        readings.setdefault(reading.meter, {})[reading.timestamp] = (reading.wh_in,
                                                                     reading.wh_out)


def _no_interval_twice(events: list[dict[str, Any]], checks: list[Check]) -> None:
    """No account's interval is settled by two positions (a re-send after a rewind included)."""
    spans: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for e in events:
        spans[(e["account"], e["side"])].append((e["fromInterval"], e["toInterval"]))
    overlaps = 0
    for ranges in spans.values():
        ranges.sort()
        overlaps += sum(1 for a, b in zip(ranges, ranges[1:], strict=False) if b[0] <= a[1])
    checks.append(Check("chain: intervals settled twice for one account and side", overlaps, 0,
                        "positions"))


def _row(who: dict[str, Any], sums: dict[tuple[str, str], dict[str, int]],
         events: list[dict[str, Any]], meters: dict[str, Any], meter_of: dict[str, str],
         last_reading: dict[str, tuple[float, float]], checks: list[Check]) -> dict[str, Any]:
    """A participant's fills against the chain's settlement and its board's counters."""
    address, name = who["address"], who["name"]
    side = "buy" if who["role"] == "consumer" else "sell"
    mine = sums.get((address, side), {})
    code = SIDE_CODES[side]
    settled = [e for e in events if e["account"] == address and e["side"] == code]
    chain_wh, chain_wei = sum(e["wh"] for e in settled), sum(e["amountWei"] for e in settled)
    checks.append(Check(f"{name}: Wh billed in its fills vs settled on chain (no metered Wh "
                        "unpaid)", mine.get("billed_wh", 0), chain_wh, "Wh"))
    checks.append(Check(f"{name}: wei of its fills vs settled on chain", mine.get("paid_wei", 0),
                        chain_wei, "wei"))
    board = meters.get(who["board"], {})
    counter = board.get("wh_in" if side == "buy" else "wh_out", 0.0)
    signed_in, signed_out = last_reading.get(meter_of.get(address, ""), (0.0, 0.0))
    # The board's own counters now are at least what its meter key last signed.
    for field, signed in (("wh_in", signed_in), ("wh_out", signed_out)):
        now = board.get(field, 0.0)
        checks.append(Check(f"{name}: board's {field} now ≥ its last signed reading's",
                            int(now >= signed - 1e-9), 1, "", note=f"{now} vs {signed}"))
    return {"name": name, "role": who["role"], "filled_wh": mine.get("wh", 0),
            "metered_wh": mine.get("metered_wh", 0), "billed_wh": mine.get("billed_wh", 0),
            "settled_wh": chain_wh, "paid_or_received_wei": mine.get("paid_wei", 0),
            "settled_wei": chain_wei, "board_counter_wh": counter}
