"""Gas of the escrow's deal lifecycle vs a naive report-and-transfer scheme, in one run.

Prints gas for deploy, deposit, a withdrawal (request, then completion after the notice),
openDeal, one delivery step and closeDeal, then gas per delivered kWh
at delivery steps of 1, 10 and 100 Wh next to the naive scheme (one report transaction plus one
plain Ether transfer per step) measured on the same chain. Run: .venv/bin/python bench/gas.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import load_artifact  # noqa: E402
from contracts.bindings import bid_tuple, sign_bid  # noqa: E402

PRICE = 10**16  # wei per kWh
KWH = 1_000
NOTICE = 24 * 3600 + 60 + 3600  # the portal's default withdrawal notice


def compile_naive() -> tuple[list, str]:
    """ABI and bytecode of bench/NaiveMeter.sol with the project's solc-js."""
    source = {
        "language": "Solidity",
        "sources": {"NaiveMeter.sol": {"content": (ROOT / "bench/NaiveMeter.sol").read_text()}},
        "settings": {"evmVersion": "prague", "optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    script = ("const s=require('solc');process.stdout.write(s.compile("
              "require('fs').readFileSync(0,'utf8')))")
    out = subprocess.run(["node", "-e", script], input=json.dumps(source), cwd=ROOT,
                         capture_output=True, text=True, check=True)
    compiled = json.loads(out.stdout)["contracts"]["NaiveMeter.sol"]["NaiveMeter"]
    return compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"]


class Bench:
    """A py-evm chain with both contracts deployed and the parties set up."""

    def __init__(self) -> None:
        backend = PyEVMBackend()
        self.tester = EthereumTester(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        accounts = self.w3.eth.accounts
        self.admin, self.seller, self.buyer, self.seller_meter, self.buyer_meter = accounts[:5]
        self.buyer_key = Account.from_key(backend.account_keys[2].to_bytes())
        self.gas: dict[str, int] = {}
        self.token = self.deploy("EnergyToken", self.admin)
        self.escrow = self.deploy("EnergyEscrow", self.token.address, self.admin, NOTICE)
        token, escrow = self.token.functions, self.escrow.functions
        self.send(token.grantRole(token.ESCROW_ROLE().call(), self.escrow.address), self.admin)
        self.send(token.enrollMeter(self.seller_meter, self.seller, 1, 100_000), self.admin)
        self.send(token.enrollMeter(self.buyer_meter, self.buyer, 2, 100_000), self.admin)
        self.tester.time_travel(self.now() + 3600)
        self.tester.mine_blocks()
        self.send(token.mintReading(50 * KWH), self.seller_meter)
        self.send(token.approve(self.escrow.address, 50 * KWH), self.seller)
        self.gas["deposit (first)"] = self.send(escrow.deposit(0), self.buyer, value=10**18)
        self.gas["deposit (again)"] = self.send(escrow.deposit(0), self.buyer, value=10**17)
        self.gas["requestWithdrawal"] = self.send(escrow.requestWithdrawal(0, 10**17), self.buyer)
        self.tester.time_travel(self.now() + NOTICE)
        self.tester.mine_blocks()
        self.gas["completeWithdrawal"] = self.send(escrow.completeWithdrawal(0), self.buyer)
        self.listing = 0

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def send(self, fn, sender: str, value: int = 0) -> int:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": sender, "value": value, "gas": 5_000_000})
        )
        assert receipt["status"] == 1
        return receipt["gasUsed"]

    def deploy(self, name: str, *args):
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            factory.constructor(*args).transact({"from": self.admin})
        )
        self.gas[f"deploy {name}"] = receipt["gasUsed"]
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)

    def open_deal(self, energy_wh: int) -> tuple[int, int]:
        """(deal id, gas) of a deal for energy_wh from a freshly signed bid."""
        self.listing += 1
        bid = {"listingId": self.listing, "buyer": self.buyer, "seller": self.seller,
               "priceWeiPerKWh": PRICE, "maxWh": energy_wh, "nonce": self.listing,
               "expiry": self.now() + 3600}
        signature = sign_bid(self.buyer_key, self.w3.eth.chain_id, self.escrow.address, bid)
        fn = self.escrow.functions.openDeal(bid_tuple(bid), signature, energy_wh,
                                            self.now() + 3600)
        gas = self.send(fn, self.admin)
        return self.escrow.functions.dealCount().call(), gas

    def deliver(self, deal_id: int, energy_wh: int, step_wh: int) -> list[int]:
        """Gas of each report delivering energy_wh in steps of step_wh."""
        report = self.escrow.functions.reportDelivery
        return [self.send(report(deal_id, wh), self.buyer_meter)
                for wh in range(step_wh, energy_wh + 1, step_wh)]


def main() -> None:
    bench = Bench()
    gas = bench.gas
    deal_id, gas["openDeal"] = bench.open_deal(KWH)
    steps = bench.deliver(deal_id, 300, 100)
    gas["reportDelivery (first step)"], gas["reportDelivery (later step)"] = steps[0], steps[1]
    gas["closeDeal"] = bench.send(bench.escrow.functions.closeDeal(deal_id), bench.buyer)

    naive_abi, naive_code = compile_naive()
    factory = bench.w3.eth.contract(abi=naive_abi, bytecode=naive_code)
    receipt = bench.w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": bench.admin}))
    naive = bench.w3.eth.contract(address=receipt["contractAddress"], abi=naive_abi)
    naive_report = [bench.send(naive.functions.report(i), bench.buyer_meter) for i in (1, 2)][1]
    transfer = bench.w3.eth.wait_for_transaction_receipt(bench.w3.eth.send_transaction(
        {"from": bench.buyer, "to": bench.seller, "value": 1}))["gasUsed"]
    naive_step = naive_report + transfer

    print("gridbid contract gas (py-evm, evmVersion prague, solc 0.8.37 optimizer 200)")
    print(f"{'operation':<34}{'gas':>12}")
    for name, used in gas.items():
        print(f"{name:<34}{used:>12,}")
    print(f"{'naive: report tx':<34}{naive_report:>12,}")
    print(f"{'naive: plain Ether transfer':<34}{transfer:>12,}")
    print()
    print("gas per delivered kWh: a 1 kWh deal opened, delivered in steps (the last completes it),")
    print("next to the naive scheme (one report tx + one plain Ether transfer per step)")
    print(f"{'step':>8}{'reports':>9}{'escrow/kWh':>14}{'naive same steps':>18}"
          f"{'ratio':>7}{'naive 1 step/kWh':>18}")
    for step in (1, 10, 100):
        deal_id, open_gas = bench.open_deal(KWH)
        reports = bench.deliver(deal_id, KWH, step)
        escrow_kwh = open_gas + sum(reports)  # one deal of exactly 1 kWh
        naive_same = naive_step * (KWH // step)
        print(f"{step:>6}Wh{len(reports):>9}{escrow_kwh:>14,}{naive_same:>18,}"
              f"{escrow_kwh / naive_same:>7.2f}{naive_step:>18,}")

if __name__ == "__main__":
    main()
