"""Constants of the contract tests' standard deal, and a compiler for test-only contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from contracts.bindings import buy_order_tuple, sell_order_tuple, sign_buy_order, sign_sell_order
from firmware_bridge.signing import sign_reading
from marketplace.positions import Batch, BuyPosition, SellPosition

ROOT = Path(__file__).resolve().parents[2]
PRODUCER, CONSUMER = 1, 2  # EnergyToken.MeterKind
PRICE = 3_000_000_000_000_001  # wei per kWh; odd, so per-step payments round
FLOOR = 10**15  # wei per kWh: the standard offer's floor price
ENERGY = 2_000  # Wh in the standard deal (and offered by the standard offer)
MINTED = 5_000  # Wh the seller's meter has measured
PRODUCER_W = 6_000  # the seller meter's rated power: MINTED Wh fit one hour's mint window
MAX_RATED_W = 1_000_000  # EnergyToken's maxRatedPowerW in the tests (the portal's default)
DEPOSIT = 10**18  # wei the buyer has prepaid
TTL = 3_600  # seconds until an offer or a bid expires
DEAL_DURATION = 7_200  # the escrow's dealDuration: seconds from a deal's opening to its expiry
BUYER_BASE = 10_000  # the buyer meter's whIn when a deal's delivery starts
SELLER_BASE = 20_000  # the seller meter's whOut then
LOTS, COMMUNITY, OUT = 0, 1, 255  # EnergyEscrow's markets and a withdrawal's destination
NOTICE = 24 * 3600 + 60 + 3600 + 1  # the escrow's withdrawal notice: the portal's default
ANYONE_AFTER = 3_600  # IntervalSettlement: block seconds until anyone may send a signed batch
INTERVAL_S = 900  # IntervalSettlement: an interval, in market and in block seconds
LINE_LOSS_BPS = 500  # IntervalSettlement: the most line loss sellers bear (5 %)
DAY_S = 86_400  # IntervalSettlement's day (a daily budget's): interval * intervalSeconds / DAY_S


def first_of_five(now: int, wall_s: int, interval_s: int = INTERVAL_S) -> int:
    """The first interval n of the tests' standard positions: n..n+3, and n+4 for a later
    one, all ended by `now` (intervals of wall_s block seconds) and in one day, since a
    position over two days is refused (BAD_INTERVALS). The four intervals before the current
    one, or the last five of the day before when those would reach into the current day."""
    n = now // wall_s - 4
    per_day = DAY_S // interval_s
    if n // per_day != (n + 4) // per_day:
        n = (n + 4) // per_day * per_day - 5
    return n


COMPILE_JS = """
const solc = require("solc");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(solc.compile(JSON.stringify(input)));
"""


def compile_test_contract(path: Path, name: str) -> tuple[list, str]:
    """(abi, bytecode) of a test-only contract, compiled with the project's solc-js."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: test-only contracts are compiled with solc-js")
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.skip("node_modules/solc is missing: run `npm ci`")
    source = {"language": "Solidity", "sources": {path.name: {"content": path.read_text()}}}
    source["settings"] = {
        "evmVersion": "prague",
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }
    result = subprocess.run(
        ["node", "-e", COMPILE_JS], input=json.dumps(source), cwd=ROOT,
        capture_output=True, text=True, check=True, timeout=120,
    )
    output = json.loads(result.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    assert not errors, "\n".join(errors)
    compiled = output["contracts"][path.name][name]
    return compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"]


# -- the community market: standing orders and positions for IntervalSettlement ---------------

CAP = 4 * 10**15  # wei per kWh: the standard buy order's cap
SELL_FLOOR = 10**15  # wei per kWh: the standard sell order's floor
COMMUNITY_DEPOSIT = 10**17  # wei the buyer holds in the COMMUNITY market


def settlement_domain(chain: Any) -> dict[str, Any]:
    """The IntervalSettlement's EIP-712 domain (what IntervalLedger.domain() returns)."""
    return {"name": "gridbid IntervalSettlement", "version": "1", "chainId": chain.chain_id,
            "verifyingContract": chain.settlement.address}


def sell_order(chain: Any, seller: str, meter: str, **fields: Any) -> dict[str, Any]:
    """A sell order at SELL_FLOOR, no cap per interval, a day to live; `fields` override."""
    return {"seller": seller, "meter": meter, "floorWeiPerKWh": SELL_FLOOR,
            "maxWhPerInterval": 0, "reserveWh": 200, "expiry": chain.now() + 86_400,
            "nonce": 1, **fields}


def buy_order(chain: Any, buyer: str, meter: str, **fields: Any) -> dict[str, Any]:
    """A buy order at CAP, no cap per interval nor budget, a day to live; `fields` override."""
    return {"buyer": buyer, "meter": meter, "capWeiPerKWh": CAP, "maxWhPerInterval": 0,
            "expectedWh": 100, "dailyBudgetWei": 0, "expiry": chain.now() + 86_400,
            "nonce": 1, **fields}


def position(
    chain: Any, order: dict[str, Any], intervals: tuple[int, int, int], wh: int, wei: int,
    closing: tuple[int, int, int], baseline: tuple[int, int, int] | None = None,
    signer: str | None = None, meter_key: str | None = None, order_sig: bytes | None = None,
) -> tuple:
    """A BuyPosition or SellPosition tuple: the order signed by its owner (or `signer`),
    readings (whIn, whOut, at) signed by the order's meter (or `meter_key`)."""
    selling = "seller" in order
    owner = order["seller"] if selling else order["buyer"]
    sign = sign_sell_order if selling else sign_buy_order
    if order_sig is None:
        order_sig = sign(chain.key(signer or owner), order, settlement_domain(chain))
    meter = order["meter"]

    def reading(values: tuple[int, int, int] | None) -> tuple[tuple, bytes]:
        if values is None:
            return ("0x" + "00" * 20, 0, 0, 0), b""
        wh_in, wh_out, at = values
        return chain.reading(meter, wh_in, wh_out, at=at, signer=meter_key)

    closing_r, baseline_r = reading(closing), reading(baseline)
    order_t = sell_order_tuple(order) if selling else buy_order_tuple(order)
    return (order_t, order_sig, closing_r[0], closing_r[1], baseline_r[0], baseline_r[1],
            (intervals[0], intervals[1], intervals[2], wh, wei))


def batch(through: int, buys: list = (), sells: list = (), mints: list = (),
          operator_sig: bytes = b"") -> tuple:
    """A Batch tuple for settle()."""
    return (through, list(buys), list(sells), [r for r, _ in mints], [s for _, s in mints],
            operator_sig)


FILL_PRICE = 2 * 10**15  # the clearing price of the interval tests' fills, wei per kWh
SETTLED, REFUSED = "PositionSettled", "PositionRefused"
REASON = {"BAD_INTERVALS": 1, "NOT_AFTER_LAST": 2, "OVER_INTERVAL_CAP": 3, "PRICE": 4,
          "OVER_DAILY_BUDGET": 5, "EXPIRED": 6, "BAD_ORDER_SIGNATURE": 7, "CANCELLED": 8,
          "WRONG_METER": 9, "BAD_READING": 10, "READING_OUT_OF_TIME": 11, "NO_BASELINE": 12,
          "OVER_METERED": 13, "INSUFFICIENT_FUNDS": 14, "POOL_SHORT": 15, "NO_TOKENS": 16}


@dataclass
class Day:
    """The community on the test chain: a seller and a buyer enrolled, the buyer funded."""

    chain: Any
    t0: int  # the closing readings' time
    n: int  # the first of the four intervals the standard positions cover

    def buy(self, order: dict | None = None, wh: int = 1_000, wei: int | None = None,
            intervals: tuple[int, int, int] | None = None, closing_wh: int = 11_000,
            at: int | None = None, baseline: tuple | None | bool = True, **kw: Any) -> tuple:
        """The buyer's position: its meter went 10,000 -> closing_wh over four intervals."""
        c = self.chain
        if baseline is True:
            baseline = (10_000, 0, self.t0 - 3_000)
        return self._position(order or buy_order(c, c.buyer, c.buyer_meter), intervals, wh, wei,
                              (closing_wh, 0, self.t0 if at is None else at), baseline, **kw)

    def sell(self, order: dict | None = None, wh: int = 1_000, wei: int | None = None,
             intervals: tuple[int, int, int] | None = None, closing_out: int = 1_000,
             at: int | None = None, baseline: tuple | None | bool = True, **kw: Any) -> tuple:
        """The seller's position: its meter charged 1,500 Wh in and sent closing_out out."""
        c = self.chain
        if baseline is True:
            baseline = (0, 0, self.t0 - 3_600)
        return self._position(order or sell_order(c, c.seller, c.seller_meter), intervals, wh,
                              wei, (1_500, closing_out, self.t0 if at is None else at), baseline,
                              **kw)

    def _position(self, order: dict, intervals: tuple[int, int, int] | None, wh: int,
                  wei: int | None, closing: tuple[int, int, int], baseline: tuple | None,
                  **kw: Any) -> tuple:
        # The standard span is the four intervals from n; the standard payment, wh at FILL_PRICE.
        return position(self.chain, order, intervals or (self.n, self.n + 3, 4), wh,
                        FILL_PRICE * wh // 1000 if wei is None else wei, closing,
                        baseline or None, **kw)

    def settle(self, b: tuple, sender: str | None = None) -> Any:
        """Send a batch (by the operator unless told) and return its receipt."""
        c = self.chain
        return c.send(c.settlement.functions.settle(b), sender or c.admin)

    def refused(self, receipt: Any) -> list[int]:
        """The reasons of every PositionRefused in a receipt."""
        return [e["reason"] for e in self.chain.events(receipt, self.chain.settlement, REFUSED)]

    def free(self) -> int:
        """The buyer's free wei in the COMMUNITY market."""
        return self.chain.escrow.functions.freeOf(self.chain.buyer, COMMUNITY).call()

    def owed(self) -> int:
        """Wei the escrow owes the seller."""
        return self.chain.escrow.functions.owedTo(self.chain.seller).call()

    def through(self) -> int:
        """The last of the standard positions' four intervals (a batch's throughInterval)."""
        return self.n + 3


# -- the community market through marketplace.Ledger (Ledger.deploy, IntervalLedger) ----------

LEDGER_WALL_S = 15  # interval_wall_s of the Ledger tests' deployments: an interval in block s


def enroll_with_consent(ledger: Any, meter: Any, owner: Any, kind: int, rated_w: int) -> None:
    """The operator enrolls a meter with its owner's consent, signed here by the owner."""
    deadline = ledger.head_timestamp() + 600
    typed = ledger.consent_typed_data(meter.address, owner.address, kind, rated_w, deadline)
    signature = owner.sign_typed_data(full_message=typed).signature
    ledger.enroll_meter(meter.address, owner.address, kind, rated_w, deadline, signature)


def later(node: Any, ledger: Any, seconds: int) -> int:
    """Move the chain `seconds` on and mine a block there; the head's new timestamp."""
    node.time_travel(ledger.head_timestamp() + seconds)
    node.mine()
    return ledger.head_timestamp()


@dataclass
class LedgerCommunity:
    """A seller and a buyer of a deployed Ledger's community market, their orders unsigned."""

    node: Any
    ledger: Any
    seller: Any  # the accounts (eth_account LocalAccount)
    buyer: Any
    seller_meter: Any
    buyer_meter: Any
    now: int  # the head's time: an hour after the seller meter's baseline
    sell: dict[str, Any]  # floor FILL_PRICE / 2, no reserve
    buy: dict[str, Any]  # cap FILL_PRICE, 500 Wh an interval, a daily budget of 1 ETH

    def four_intervals(self) -> Batch:
        """Four intervals (of LEDGER_WALL_S block seconds) before now, in one day
        (first_of_five): 1,000 Wh for FILL_PRICE, the buyer's meter 4,000 -> 5,000 Wh in, the
        seller's 0 -> 1,000 Wh out (1,200 in: minted); both orders signed by their owners."""
        domain, readings = self.ledger.intervals.domain(), self.ledger.reading_domain()
        n = first_of_five(self.now, LEDGER_WALL_S)
        fill = {"from_interval": n, "to_interval": n + 3, "filled_intervals": 4, "wh": 1_000,
                "wei": FILL_PRICE}
        buyer_meter, seller_meter, now = self.buyer_meter, self.seller_meter, self.now
        return Batch(n + 3, buys=[BuyPosition(
            self.buy, sign_buy_order(self.buyer, self.buy, domain),
            sign_reading(buyer_meter, readings, 5_000, 0, now),
            baseline=sign_reading(buyer_meter, readings, 4_000, 0, now - 60), **fill)],
            sells=[SellPosition(
                self.sell, sign_sell_order(self.seller, self.sell, domain),
                sign_reading(seller_meter, readings, 1_200, 1_000, now),
                baseline=sign_reading(seller_meter, readings, 0, 0, now - 60), **fill)])


def ledger_community(node: Any, ledger: Any, day_start: bool = False) -> LedgerCommunity:
    """After ledger.deploy: a seller and a buyer funded with 1 ETH, their meters enrolled,
    COMMUNITY_DEPOSIT in the buyer's COMMUNITY escrow, the seller meter's baseline an hour ago
    (or, with day_start, a little more: now in the second interval of a day)."""
    seller, buyer, seller_meter, buyer_meter = (Account.create() for _ in range(4))
    ledger.fund(buyer.address, 10**18)
    ledger.fund(seller.address, 10**18)
    enroll_with_consent(ledger, seller_meter, seller, PRODUCER, 100_000)
    enroll_with_consent(ledger, buyer_meter, buyer, CONSUMER, 500)
    deposit = ledger.user_tx("EnergyEscrow", "deposit", [COMMUNITY], COMMUNITY_DEPOSIT)
    ledger.wait(ledger.txm.send(buyer, deposit, "deposit"))
    start = later(node, ledger, 10)
    ledger.wait(ledger.mint_readings_async([sign_reading(seller_meter, ledger.reading_domain(),
                                                         0, 0, start)]))
    now = later(node, ledger, 3600)
    if day_start:
        wall_day = DAY_S // INTERVAL_S * LEDGER_WALL_S  # a day in the deployment's block time
        now = later(node, ledger, (now // wall_day + 1) * wall_day + LEDGER_WALL_S + 1 - now)
    sell = {"seller": seller.address, "meter": seller_meter.address,
            "floorWeiPerKWh": FILL_PRICE // 2, "maxWhPerInterval": 0, "reserveWh": 0,
            "expiry": now + 86_400, "nonce": 1}
    buy = {"buyer": buyer.address, "meter": buyer_meter.address, "capWeiPerKWh": FILL_PRICE,
           "maxWhPerInterval": 500, "expectedWh": 100, "dailyBudgetWei": 10**18,
           "expiry": now + 86_400, "nonce": 2}
    return LedgerCommunity(node, ledger, seller, buyer, seller_meter, buyer_meter, now, sell, buy)
