"""`gridbid simulate`: a day on the microgrid through the real stack, then its books.

The portal's Runtime is started with N producers and M consumers (chain, contracts, boards
on ptys behind the pyserial bridge, the market), on emulated time; automatic agents list
and bid; at the end of the day every deal is settled, the meters, the chain and the store
are read separately and put against each other (marketplace.reconcile), and a report with
plots is written (web.sim_report).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketplace.agents import BUSY, ConsumerAgent, ProducerAgent
from marketplace.clock import ScaledClock
from marketplace.errors import MarketError
from marketplace.reconcile import DayRecord, Reconciliation, reconcile

log = logging.getLogger(__name__)

ETHER = 10**18
MILLI_ETH_PER_KWH = 10**15  # prices are wei per kWh; 0.001 ETH/kWh is a readable unit
ZERO = "0x0000000000000000000000000000000000000000"

# Load shapes of a day as (from-hour, share of the consumer's peak watts).
LOAD_SHAPES = [
    [(0, 0.25), (6, 0.6), (9, 0.3), (17, 1.0), (22, 0.4)],  # a household: evening peak
    [(0, 0.0), (8, 1.0), (12, 0.7), (13, 1.0), (18, 0.0)],  # a workshop: working hours
    [(0, 0.5), (7, 0.8), (19, 1.0), (23, 0.5)],  # a cold store: always on
    [(0, 0.0), (10, 0.6), (15, 1.0), (20, 0.2)],  # a shop
    [(0, 0.3), (5, 1.0), (8, 0.2), (18, 0.8)],  # a bakery: early and late
]


@dataclass
class Plan:
    """What a simulated day is made of."""

    producers: int = 3
    consumers: int = 5
    hours: float = 24.0
    start_hour: float = 0.0
    speed: float = 300.0  # emulated seconds per real second
    chain: str = "embedded://"
    out: Path = Path("var/simulation")
    seed: int = 1
    agent_period_s: float = 0.1  # real seconds between the agents' rounds
    sample_s: float = 120.0  # emulated seconds between the plots' samples
    lot_wh: int = 120
    auction_s: int = 900  # emulated seconds an auction runs
    participants: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.participants:
            self.participants = cast(self.producers, self.consumers, self.seed)


def cast(producers: int, consumers: int, seed: int = 1) -> list[dict[str, Any]]:
    """The day's participants: PV peaks and reserve prices, load profiles and price limits."""
    rng = random.Random(seed)
    people: list[dict[str, Any]] = []
    for i in range(1, producers + 1):
        people.append({
            "name": f"producer{i}", "role": "producer", "passphrase": f"producer{i}-sim",
            "board": f"pv-producer{i}", "pv_peak_w": 300 + 100 * ((i - 1) % 3),
            "sky": "clouds" if i % 3 == 2 else "clear",
            # An odd number of wei, so the escrow's rounding down is exercised for real.
            "reserve_wei": (8 + 2 * i) * MILLI_ETH_PER_KWH + rng.randrange(1, 999),
        })
    for i in range(1, consumers + 1):
        peak = rng.choice([160, 200, 240, 300])
        shape = LOAD_SHAPES[(i - 1) % len(LOAD_SHAPES)]
        people.append({
            "name": f"consumer{i}", "role": "consumer", "passphrase": f"consumer{i}-sim",
            "board": f"load-consumer{i}", "load_w": float(peak),  # its meter's rating
            "profile": [(hour, round(peak * share, 1)) for hour, share in shape],
            "limit_wei": (14 + 3 * i) * MILLI_ETH_PER_KWH + rng.randrange(1, 999),
        })
    return people


class Simulation:
    """One day: start the stack, let the agents trade, settle, read the books, stop."""

    def __init__(self, plan: Plan, progress: Callable[[str], None] = print):
        self.plan = plan
        self.say = progress
        self.samples: list[dict[str, Any]] = []
        self.runtime: Any = None

    def run(self) -> tuple[Reconciliation, Path]:
        """Run the day and write the report; (reconciliation, summary path)."""
        from web.sim_report import write_report

        plan = self.plan
        (plan.out / "var").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.say(f"starting {plan.producers} producers, {plan.consumers} consumers on "
                 f"{plan.chain} (emulated time ×{plan.speed:g}) ...")
        try:
            self._start()
            self._open_day()
            self._trade()
            self._settle()
            self.say("reading the books: meters over serial, chain events and state, store ...")
            day = self._read_books()
        finally:
            if self.runtime is not None:
                self.runtime.stop()
        books = reconcile(day)
        self.say("writing the report ...")
        wall = time.monotonic() - started
        names = {p["address"]: p["name"] for p in self.people}
        summary = write_report(plan, books, self.samples, names, self._hour, wall)
        verdict = "holds" if books.ok else f"FAILS ({len(books.failures())} checks)"
        self.say(f"done in {wall:.0f} s: {len(books.deals)} deals, "
                 f"{books.total['delivered_wh']} Wh delivered, reconciliation {verdict}")
        return books, summary

    # -- the stack -------------------------------------------------------------------------

    def _start(self) -> None:
        from web import DEFAULTS
        from web.runtime import Runtime

        plan = self.plan
        self.clock = ScaledClock(plan.speed)
        self.t0, self.first_hour = self.clock.now(), plan.start_hour
        specs = [{k: v for k, v in p.items() if k not in ("reserve_wei", "limit_wei")}
                 for p in plan.participants]
        config = {
            **DEFAULTS,
            "CHAIN_URI": plan.chain, "CHAIN_FALLBACK": False,
            "DATA_DIR": str(plan.out / "var"), "STORE_PATH": None,
            "SCRYPT_N": 2**10,  # throwaway accounts: cheap keystores
            "CLOCK": self.clock, "EMULATOR_SPEED": plan.speed,
            "EMULATOR_START_HOUR": plan.start_hour, "PARTICIPANTS": specs,
            "TICK_S": 0.2, "EVENT_POLL_S": 2.0,
            "SOFT_CLOSE_S": 60, "SOFT_CLOSE_CAP_S": 300,  # emulated seconds, as every timer
        }
        self.runtime = Runtime(config)
        self.runtime.start()

    def _hour(self, at: float | None = None) -> float:
        """Hours since midnight before the day's start (not wrapped at 24) of a clock time."""
        now = self.clock.now() if at is None else at
        return self.first_hour + (now - self.t0) / 3600.0

    def _open_day(self) -> None:
        """Unlock the participants, note balances, deposit the consumers' escrow."""
        rt, plan = self.runtime, self.plan
        by_name = {a["name"]: a for a in rt.demo_accounts}
        self.people = []
        for spec in plan.participants:
            acct = by_name[spec["name"]]
            key = rt.keystore.unlock(acct["address"], spec["passphrase"])
            self.people.append({**spec, "address": acct["address"], "key": key})
        self.eth_start = {p["address"]: rt.ledger.eth_balance(p["address"]) for p in self.people}
        # The chain's own records, gathered as the day goes (eth-tester's getLogs and receipt
        # look-ups scan the whole chain, so reading them all at the end would take minutes).
        self.fees = dict.fromkeys(self.eth_start, 0)
        self._feed: set[str] = set()
        rt.txm.subscribe(self._on_transaction)
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.poller = rt.ledger.log_poller(0)
        deposits = [rt.ledger.deposit(p["key"], 20 * ETHER)
                    for p in self.people if p["role"] == "consumer"]
        for record in deposits:
            rt.ledger.wait(record)
        self.producers = [ProducerAgent(p["name"], p["key"], p["reserve_wei"], plan.lot_wh,
                                        duration_s=plan.auction_s)
                          for p in self.people if p["role"] == "producer"]
        self.consumers = [ConsumerAgent(p["name"], p["key"], p["limit_wei"], p["profile"],
                                        p["load_w"])
                          for p in self.people if p["role"] == "consumer"]
        # Trading starts now; the emulator ran from start_hour while the stack came up.
        with rt.microgrid.lock:
            hour, self.t0 = rt.microgrid.hour, self.clock.now()
        self.first_hour = plan.start_hour + (hour - plan.start_hour) % 24.0

    # -- the day ---------------------------------------------------------------------------

    def _trade(self) -> None:
        plan, market = self.plan, self.runtime.market
        rng = random.Random(plan.seed)
        end = self.first_hour + plan.hours
        next_sample = next_report = self._hour()
        while (hour := self._hour()) < end:
            for agent in self.producers:
                agent.act(market)
            rng.shuffle(self.consumers)  # nobody is always first to bid
            for agent in self.consumers:
                agent.act(market, hour)
            if hour >= next_sample:
                self._sample(hour)
                self._poll_events()
                next_sample = hour + plan.sample_s / 3600.0
            if hour >= next_report:
                self._progress(hour)
                next_report = int(hour) + 1.0
            time.sleep(plan.agent_period_s)
        self._sample(self._hour())
        self._progress(self._hour())

    def _on_transaction(self, record: Any) -> None:
        """Add a participant's mined (or reverted) transaction's gas fee, from its receipt."""
        receipt = record.receipt
        if receipt is None or record.sender not in self.fees or record.tx_hash in self._feed:
            return
        self._feed.add(record.tx_hash)
        self.fees[record.sender] += receipt["gasUsed"] * receipt["effectiveGasPrice"]

    def _poll_events(self) -> None:
        """Read both contracts' new logs (eth_getLogs from where the last read stopped)."""
        ledger = self.runtime.ledger
        for raw in self.poller.poll():
            decoded = ledger.decode(raw)
            if decoded:
                self.events.setdefault(decoded[0], []).append(decoded[1])

    def _sample(self, hour: float) -> None:
        """Readings of every board (the bridge's latest) and the Ether moved so far."""
        rt = self.runtime
        row: dict[str, Any] = {"hour": hour, "boards": {}, "paid": {}, "received": {}}
        for p in self.people:
            reading = rt.market.safe_read(p["board"])
            if reading is not None:
                row["boards"][p["name"]] = {"power_w": reading.power_w, "pv_w": reading.pv_w,
                                           "soc": reading.soc, "wh_in": reading.wh_in,
                                           "wh_out": reading.wh_out}
        for deal in rt.market.store.deals():
            row["paid"][deal["buyer"]] = row["paid"].get(deal["buyer"], 0) + deal["paid_wei"]
            row["received"][deal["seller"]] = (row["received"].get(deal["seller"], 0)
                                               + deal["paid_wei"])
        self.samples.append(row)

    def _progress(self, hour: float) -> None:
        deals = self.runtime.market.store.deals()
        done = sum(d["status"] == "closed" for d in deals)
        wh = sum(d["delivered_wh"] for d in deals)
        pending = len(self.runtime.txm.pending())
        self.say(f"[{int(hour % 24):02d}:{int(hour % 1 * 60):02d}] hour "
                 f"{hour - self.first_hour:4.1f}/{self.plan.hours:g}  deals {len(deals)} "
                 f"({done} closed)  delivered {wh} Wh  pending tx {pending}")

    # -- closing the books -----------------------------------------------------------------

    def _settle(self) -> None:
        """End of trading: auctions finish, buyers close their deals, the last Wh is minted."""
        rt = self.runtime
        market, keys = rt.market, {p["address"]: p["key"] for p in self.people}
        self.say("end of the day: settling open auctions and deals ...")
        for listing in market.listings("open"):
            if not listing["bid_count"]:
                try:
                    market.cancel_listing(keys[listing["seller"]], listing["id"])
                except MarketError:
                    pass  # it closed by itself meanwhile
        self._wait(lambda: not market.store.listings("open"), "auctions to close")
        self._wait(lambda: not any(d["status"] == "opening" for d in market.store.deals()),
                   "deals to open")
        for deal in market.store.deals():
            if deal["status"] == "active":
                try:
                    market.close_connection(keys[deal["buyer"]], deal["id"])
                except MarketError:
                    pass  # it completed meanwhile
        self._wait(lambda: not any(d["status"] in BUSY for d in market.store.deals()),
                   "deals to close", timeout=120)
        # Sunset for the books: emulated time stands still, so the meters stop moving while
        # the last Wh each producer's meter counted is minted, one Wh at a time if need be.
        rt.microgrid.speed = 0.0
        market.minting.batch_wh = 1
        meters = {p["board_id"]: p["meter_address"] for p in market.store.participants()
                  if p["role"] == "producer"}
        target = {b: int(rt.bridge.read(b).wh_in) for b in meters}
        self.say("minting each producer meter's last Wh ...")
        self._wait(lambda: all(rt.ledger.meter_of(m)["last_reading_wh"] >= target[b]
                               for b, m in meters.items()), "the last mints", timeout=60)
        self._wait(lambda: not rt.txm.pending(), "pending transactions")

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulation: gave up waiting for {what} after {timeout:.0f} s")
            time.sleep(0.1)

    def _read_books(self) -> DayRecord:
        """Read each source on its own: meters over serial, the chain, the store."""
        rt = self.runtime
        ledger, store = rt.ledger, rt.market.store
        addresses = [p["address"] for p in self.people]
        meters = {}
        for p in self.people:
            reading = rt.bridge.read(p["board"])
            meters[p["board"]] = (reading.wh_in, reading.wh_out)
        self._poll_events()
        events = self.events
        minted: dict[str, int] = {}
        for args in events.get("EnergyMinted", []):
            minted[args["owner"]] = minted.get(args["owner"], 0) + args["wh"]
        steps: dict[int, list[tuple[int, int]]] = {}
        for args in events.get("DeliveryReported", []):
            steps.setdefault(args["dealId"], []).append((args["stepWh"], args["stepWei"]))
        chain_deals = []
        for cid in range(1, ledger.escrow.functions.dealCount().call() + 1):
            d = ledger.chain_deal(cid)
            chain_deals.append({
                "id": cid, "listing_id": d["listingId"], "buyer": d["buyer"],
                "seller": d["seller"], "price": d["priceWeiPerKWh"], "energy_wh": d["energyWh"],
                "delivered_wh": d["deliveredWh"], "paid_wei": d["paidWei"],
                "refunded_wei": d["lockedWei"] - d["paidWei"], "closed": d["status"] == 2,
                "close_reason": int(d["closeReason"]), "steps": steps.get(cid, []),
            })
        meter_of = {p["address"]: p["meter_address"] for p in store.participants()}
        return DayRecord(
            participants=[{k: p[k] for k in ("name", "address", "role", "board")}
                          for p in self.people],
            meters=meters,
            line_loss_wh=rt.microgrid.line_loss_wh,
            minted=minted,
            meter_readings={p["address"]: ledger.meter_of(meter_of[p["address"]])[
                "last_reading_wh"] for p in self.people if p["role"] == "producer"},
            burned_wh=sum(a["value"] for a in events.get("Transfer", []) if a["to"] == ZERO),
            token_balances={a: ledger.token_balance(a) for a in addresses},
            escrow_tokens=ledger.token_balance(ledger.escrow.address),
            total_supply=ledger.total_supply(),
            chain_deals=chain_deals,
            store_listings=store.listings(),
            store_deals=store.deals(),
            deposits=_sums(events.get("Deposited", []), "buyer", "amount"),
            withdrawals=_sums(events.get("Withdrawn", []), "buyer", "amount"),
            escrow_free={a: ledger.escrow_free(a) for a in addresses},
            escrow_locked={a: ledger.escrow_locked(a) for a in addresses},
            owed={a: ledger.escrow.functions.owedTo(a).call() for a in addresses},
            escrow_eth=ledger.eth_balance(ledger.escrow.address),
            eth_start=self.eth_start,
            eth_end={a: ledger.eth_balance(a) for a in addresses},
            gas_paid=dict(self.fees),
        )


def _sums(events: list[dict[str, Any]], key: str, amount: str) -> dict[str, int]:
    sums: dict[str, int] = {}
    for args in events:
        sums[args[key]] = sums.get(args[key], 0) + args[amount]
    return sums


def add_arguments(parser: Any) -> None:
    """The options of `gridbid simulate`."""
    plan = Plan()
    parser.add_argument("--producers", type=int, default=plan.producers)
    parser.add_argument("--consumers", type=int, default=plan.consumers)
    parser.add_argument("--hours", type=float, default=plan.hours, help="length of the day")
    parser.add_argument("--start-hour", type=float, default=plan.start_hour,
                        help="time of day the emulator starts at (default midnight)")
    parser.add_argument("--speed", type=float, default=plan.speed,
                        help="emulated seconds per real second (default %(default)s)")
    parser.add_argument("--chain", default=plan.chain,
                        help="chain URI: embedded:// (default, fastest) or anvil://")
    parser.add_argument("--seed", type=int, default=plan.seed)
    parser.add_argument("--out", help="report directory (default var/simulation/<timestamp>)")


def main(args: Any) -> int:
    """Run `gridbid simulate`; 0 when the books reconcile, 1 when they do not."""
    from datetime import datetime

    # Progress lines are the output; the stack's own INFO chatter goes quiet.
    logging.getLogger().setLevel(logging.WARNING)
    out = Path(args.out or f"var/simulation/{datetime.now():%Y%m%d-%H%M%S}")
    if args.producers < 1 or args.consumers < 1 or args.hours <= 0:
        print("gridbid simulate: needs at least one producer, one consumer and some hours")
        return 2
    plan = Plan(producers=args.producers, consumers=args.consumers, hours=args.hours,
                start_hour=args.start_hour, speed=args.speed, chain=args.chain, out=out,
                seed=args.seed)
    books, summary = Simulation(plan, progress=lambda line: print(line, flush=True)).run()
    for check in books.failures():
        print(f"  disagrees: {check.what}: {check.left} vs {check.right} ({check.unit})")
    print(f"summary: {summary}")
    return 0 if books.ok else 1
