"""Constants of the contract tests' standard deal, and a compiler for test-only contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contracts.bindings import buy_order_tuple, sell_order_tuple, sign_buy_order, sign_sell_order

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
