"""Constants of the contract tests' standard deal, and a compiler for test-only contracts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

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
