"""Gas of the escrow's deal lifecycle vs a naive report-and-transfer scheme, in one run.

Prints gas for deploy, meter enrollment (with its owner's consent), a mint batch (per signed
reading), a permit, deposit, a withdrawal (request, then completion after the notice),
openDeal (signed offer + signed bid), the baseline report, one delivery step (both meters'
signed readings) and closeDeal, then gas per delivered kWh at delivery steps of 1, 10 and 100 Wh
next to the naive scheme (one report transaction plus one plain Ether transfer per step)
measured on the same chain; then the community market's interval settlement over a day
(bench/gas_intervals.py), by how often it settles. Run: .venv/bin/python bench/gas.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import load_artifact  # noqa: E402
from contracts.bindings import (  # noqa: E402
    PERMIT_TYPES,
    TOKEN_DOMAIN,
    bid_tuple,
    offer_hash,
    offer_tuple,
    reading_tuple,
    sign_bid,
    sign_consent,
    sign_offer,
    sign_reading_struct,
    typed_data,
)

PRICE = 10**16  # wei per kWh
KWH = 1_000
NOTICE = 24 * 3600 + 60 + 3600  # the portal's default withdrawal notice
DEAL_DURATION = 24 * 3600  # the portal's default deal duration (DEAL_TTL_S)
MAX_RATED_W = 1_000_000  # the portal's default MAX_RATED_POWER_W
BATCH = 20  # readings in the measured mint batch


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
        self.chain_id = self.w3.eth.chain_id
        accounts = self.w3.eth.accounts
        self.admin, self.seller, self.buyer, self.seller_meter, self.buyer_meter = accounts[:5]
        self.keys = {a: Account.from_key(backend.account_keys[i].to_bytes())
                     for i, a in enumerate(accounts)}
        self.gas: dict[str, int] = {}
        self.token = self.deploy("EnergyToken", self.admin, MAX_RATED_W)
        self.escrow = self.deploy("EnergyEscrow", self.token.address, self.admin, NOTICE,
                                  DEAL_DURATION)
        token, escrow = self.token.functions, self.escrow.functions
        self.send(token.grantRole(token.ESCROW_ROLE().call(), self.escrow.address), self.admin)
        self.gas["enrollMeter"] = self.enroll(self.seller_meter, self.seller, 1, 100_000)
        self.enroll(self.buyer_meter, self.buyer, 2, 100_000)
        self.tester.time_travel(self.now() + 10)
        self.tester.mine_blocks()
        # An enrollment's first reading only sets the meter's counter (mints nothing).
        self.gas["mintReadings (1 baseline)"] = self.mint([(self.seller_meter, 0)])
        self.tester.time_travel(self.now() + 3600)
        self.tester.mine_blocks()
        self.gas["mintReadings (1 reading)"] = self.mint([(self.seller_meter, 50 * KWH)])
        self.gas[f"mintReadings per reading ({BATCH})"] = self.mint_batch()
        self.gas["permit (operator sends)"] = self.permit(self.seller, 10**9)
        self.gas["deposit (first)"] = self.send(escrow.deposit(0), self.buyer, value=10**18)
        self.gas["deposit (again)"] = self.send(escrow.deposit(0), self.buyer, value=10**17)
        self.gas["requestWithdrawal"] = self.send(escrow.requestWithdrawal(0, 10**17), self.buyer)
        self.tester.time_travel(self.now() + NOTICE)
        self.tester.mine_blocks()
        self.gas["completeWithdrawal"] = self.send(escrow.completeWithdrawal(0), self.buyer)
        self.offers = 0
        # Meters that have run a while: a baseline writes non-zero counters, the dearest case.
        self.counters = {self.seller_meter: 10 * KWH, self.buyer_meter: 10 * KWH}

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

    def enroll(self, meter: str, owner, kind: int, rated_w: int) -> int:
        """Gas of the admin's enrollMeter with the owner's signed consent."""
        key = owner if not isinstance(owner, str) else self.keys[owner]
        consent = {"meter": meter, "owner": key.address, "kind": kind, "ratedPowerW": rated_w,
                   "deadline": self.now() + 600}
        signature = sign_consent(key, self.chain_id, self.token.address, consent)
        fn = self.token.functions.enrollMeter(meter, key.address, kind, rated_w,
                                              consent["deadline"], signature)
        return self.send(fn, self.admin)

    def reading(self, meter, wh_in: int, wh_out: int = 0) -> tuple[tuple, bytes]:
        """A meter's signed Reading at the head's time."""
        key = meter if not isinstance(meter, str) else self.keys[meter]
        struct = {"meter": key.address, "whIn": wh_in, "whOut": wh_out, "timestamp": self.now()}
        return reading_tuple(struct), sign_reading_struct(key, self.chain_id,
                                                          self.token.address, struct)

    def mint(self, readings) -> int:
        """Gas of one mintReadings batch of (meter, whIn) readings."""
        signed = [self.reading(meter, wh) for meter, wh in readings]
        fn = self.token.functions.mintReadings([r for r, _ in signed], [s for _, s in signed])
        return self.send(fn, self.admin)

    def mint_batch(self) -> int:
        """Gas per reading of a BATCH-reading mint, each to an owner without tokens yet."""
        meters = [Account.create() for _ in range(BATCH)]
        for meter in meters:
            self.enroll(meter.address, Account.create(), 1, 10_000)
        self.tester.time_travel(self.now() + 10)
        self.tester.mine_blocks()
        self.mint([(meter, 0) for meter in meters])  # their baselines
        self.tester.time_travel(self.now() + 600)
        self.tester.mine_blocks()
        return self.mint([(meter, 100) for meter in meters]) // BATCH

    def permit(self, owner: str, value: int) -> int:
        """Gas of the operator submitting an owner's ERC-2612 permit for the escrow."""
        deadline = self.now() + 600
        message = {"owner": owner, "spender": self.escrow.address, "value": value,
                   "nonce": self.token.functions.nonces(owner).call(), "deadline": deadline}
        full = typed_data(PERMIT_TYPES, TOKEN_DOMAIN, self.chain_id, self.token.address, message)
        sig = self.keys[owner].sign_message(encode_typed_data(full_message=full)).signature
        fn = self.token.functions.permit(owner, self.escrow.address, value, deadline, sig[64],
                                         sig[:32], sig[32:64])
        return self.send(fn, self.admin)

    def open_deal(self, energy_wh: int) -> tuple[int, int]:
        """(deal id, gas) of a deal for energy_wh from a fresh signed offer and bid."""
        self.offers += 1
        offer = {"seller": self.seller, "sellerMeter": self.seller_meter, "energyWh": energy_wh,
                 "floorPriceWeiPerKWh": PRICE, "deadline": self.now() + 3600,
                 "nonce": self.offers}
        bid = {"offer": offer_hash(self.chain_id, self.escrow.address, offer),
               "buyer": self.buyer, "buyerMeter": self.buyer_meter, "priceWeiPerKWh": PRICE,
               "maxWh": energy_wh, "nonce": self.offers, "expiry": self.now() + 3600}
        offer_sig = sign_offer(self.keys[self.seller], self.chain_id, self.escrow.address, offer)
        bid_sig = sign_bid(self.keys[self.buyer], self.chain_id, self.escrow.address, bid)
        fn = self.escrow.functions.openDeal(offer_tuple(offer), offer_sig, bid_tuple(bid),
                                            bid_sig, energy_wh)
        gas = self.send(fn, self.admin)
        return self.escrow.functions.dealCount().call(), gas

    def report(self, deal_id: int, step_wh: int) -> int:
        """Gas of one report after both meters counted step_wh more (0: the baseline)."""
        self.counters[self.seller_meter] += step_wh
        self.counters[self.buyer_meter] += step_wh
        seller = self.reading(self.seller_meter, 0, self.counters[self.seller_meter])
        buyer = self.reading(self.buyer_meter, self.counters[self.buyer_meter])
        fn = self.escrow.functions.reportDelivery(deal_id, *seller, *buyer)
        return self.send(fn, self.admin)

    def deliver(self, deal_id: int, energy_wh: int, step_wh: int) -> list[int]:
        """Gas of the baseline report, then of each report delivering energy_wh in steps."""
        return [self.report(deal_id, 0)] + [self.report(deal_id, step_wh)
                                            for _ in range(energy_wh // step_wh)]


def main() -> None:
    bench = Bench()
    gas = bench.gas
    deal_id, gas["openDeal"] = bench.open_deal(KWH)
    steps = bench.deliver(deal_id, 300, 100)
    gas["reportDelivery (baseline)"] = steps[0]
    gas["reportDelivery (first step)"], gas["reportDelivery (later step)"] = steps[1], steps[2]
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
    print(f"{'operation':<38}{'gas':>12}")
    for name, used in gas.items():
        print(f"{name:<38}{used:>12,}")
    print(f"{'naive: report tx':<38}{naive_report:>12,}")
    print(f"{'naive: plain Ether transfer':<38}{transfer:>12,}")
    print()
    print("gas per delivered kWh: a 1 kWh deal opened, its baseline reported, delivered in steps")
    print("(the last completes it), next to the naive scheme (one report tx + one plain Ether")
    print("transfer per step); every report carries both meters' signed readings")
    print(f"{'step':>8}{'reports':>9}{'escrow/kWh':>14}{'naive same steps':>18}"
          f"{'ratio':>7}{'naive 1 step/kWh':>18}")
    for step in (1, 10, 100):
        deal_id, open_gas = bench.open_deal(KWH)
        reports = bench.deliver(deal_id, KWH, step)
        escrow_kwh = open_gas + sum(reports)  # one deal of exactly 1 kWh, baseline included
        naive_same = naive_step * (KWH // step)
        print(f"{step:>6}Wh{len(reports):>9}{escrow_kwh:>14,}{naive_same:>18,}"
              f"{escrow_kwh / naive_same:>7.2f}{naive_step:>18,}")
    print()
    import gas_intervals  # bench/ is the script's directory, first on sys.path

    gas_intervals.main()

if __name__ == "__main__":
    main()
