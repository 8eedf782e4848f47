"""Gas of the community market's settlement over a steady-state day, by how often it settles.

10 sellers and 30 buyers trade every 15-minute interval of one day from a simple synthetic
schedule (each buyer takes 50 Wh an interval, each seller sells 150 Wh from its battery and
charges 300 Wh an interval from PV between 06:00 and 18:00). The same day is settled four
ways from one snapshot: every interval, hourly, daily, and per kWh (a participant's position
once its unsettled energy reaches 1,000 Wh, everyone at the end of the day). Each prints gas per
delivered kWh by kind: settle (IntervalSettlement.settle, its netted mints included), mint
(separate mintReadings: none, interval sellers mint through settle) and other (sellers'
withdrawOwed once at the end of the day). Setup (deploy, enrollment, the sellers' first
mints, deposits) is reported apart. Each participant's first settlement (which stores its
order's verified hash and its account's slot) is printed both ways: apart, and counted in the
day's figure (issue 15 names only deploy, enrollment, funding and deposits as setup).
Run: .venv/bin/python bench/gas_intervals.py
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import load_artifact  # noqa: E402
from contracts.bindings import reading_tuple, sign_buy_order, sign_consent, sign_sell_order  # noqa: E402
from firmware_bridge.signing import ReadingDomain, sign_reading  # noqa: E402
from marketplace.positions import Batch, BuyPosition, SellPosition  # noqa: E402

SELLERS, BUYERS, INTERVALS = 10, 30, 96
INTERVAL_S = 900
BUY_WH, SELL_WH, PV_WH = 50, 150, 300  # per interval: each buyer, each seller, PV by day
PRICE = 2 * 10**15  # wei per kWh, every interval's clearing price
RATED_W = 10_000
PREMINT_WH = 10_000  # tokens each seller holds from before the day (setup)
GOAL = 100_000  # gas per delivered kWh
FIRST = "first settlement (order, account)"  # each participant's first: apart, and counted
ETH = 10**18


class Community:
    """A py-evm chain with the three contracts, the participants enrolled and funded."""

    def __init__(self) -> None:
        self.tester = EthereumTester(PyEVMBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.admin = self.w3.eth.accounts[0]
        self.setup: dict[str, int] = defaultdict(int)
        self.token = self.deploy("EnergyToken", self.admin, 10**6)
        self.escrow = self.deploy("EnergyEscrow", self.token.address, self.admin, 90_000, 86_400)
        self.settlement = self.deploy("IntervalSettlement", self.token.address,
                                      self.escrow.address, self.admin, 3_600, INTERVAL_S,
                                      INTERVAL_S, 500)  # 5 % line loss at most
        t, e = self.token.functions, self.escrow.functions
        self.send(t.grantRole(t.ESCROW_ROLE().call(), self.escrow.address), "roles")
        for target in (t, e):
            self.send(target.grantRole(target.SETTLEMENT_ROLE().call(), self.settlement.address),
                      "roles")
        self.chain_id = self.w3.eth.chain_id
        self.domain = {"name": "gridbid IntervalSettlement", "version": "1",
                       "chainId": self.chain_id, "verifyingContract": self.settlement.address}
        self.readings = ReadingDomain(self.chain_id, self.token.address)
        self.sellers = [self.participant(1) for _ in range(SELLERS)]
        self.buyers = [self.participant(2) for _ in range(BUYERS)]
        now = self.now()
        self.day_start = (now // 86_400 + 1) * 86_400 + (86_400 if now % 86_400 > 60_000 else 0)
        self.n0 = self.day_start // INTERVAL_S

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def travel(self, t: int) -> None:
        self.tester.time_travel(t)
        self.tester.mine_blocks()

    def send(self, fn, kind: str | None, sender: str | None = None, value: int = 0) -> int:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": sender or self.admin, "value": value, "gas": 29_000_000}))
        assert receipt["status"] == 1, kind
        if kind:
            self.setup[kind] += receipt["gasUsed"]
        self.last_receipt = receipt
        return receipt["gasUsed"]

    def deploy(self, name: str, *args):
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            factory.constructor(*args).transact({"from": self.admin}))
        self.setup["deploy"] += receipt["gasUsed"]
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)

    def participant(self, kind: int) -> dict:
        """An owner (a key the chain knows, funded) and its meter, enrolled with consent."""
        owner, meter = Account.create(), Account.create()
        self.tester.add_account(owner.key.hex())
        self.w3.eth.send_transaction({"from": self.admin, "to": owner.address, "value": ETH})
        consent = {"meter": meter.address, "owner": owner.address, "kind": kind,
                   "ratedPowerW": RATED_W, "deadline": self.now() + 600}
        signature = sign_consent(owner, self.chain_id, self.token.address, consent)
        self.send(self.token.functions.enrollMeter(meter.address, owner.address, kind, RATED_W,
                                                   consent["deadline"], signature), "enrollMeter")
        return {"owner": owner, "meter": meter, "in": 0, "out": 0}

    def mint(self, sellers: list[dict], at: int) -> None:
        signed = [sign_reading(s["meter"], self.readings, s["in"], 0, at) for s in sellers]
        fn = self.token.functions.mintReadings([reading_tuple(r.struct()) for r in signed],
                                               [r.signature for r in signed])
        self.send(fn, "mintReadings (baseline, then pre-mint)")


def setup(c: Community) -> None:
    """Sellers' baselines and tokens, buyers' deposits, and everyone's first settlement."""
    c.travel(c.day_start - 7_200)
    c.mint(c.sellers, c.now())
    c.travel(c.day_start - 3_600)
    for s in c.sellers:
        s["in"] = PREMINT_WH
    c.mint(c.sellers, c.now())
    for b in c.buyers:
        c.send(c.escrow.functions.deposit(1), "deposit", b["owner"].address, ETH // 10)
    expiry = c.day_start + 3 * 86_400
    for i, s in enumerate(c.sellers):
        s["order"] = {"seller": s["owner"].address, "meter": s["meter"].address,
                      "floorWeiPerKWh": PRICE // 2, "maxWhPerInterval": 1_000, "reserveWh": 0,
                      "expiry": expiry, "nonce": i}
        s["sig"] = sign_sell_order(s["owner"], s["order"], c.domain)
    for i, b in enumerate(c.buyers):
        b["order"] = {"buyer": b["owner"].address, "meter": b["meter"].address,
                      "capWeiPerKWh": PRICE * 2, "maxWhPerInterval": 500, "expectedWh": BUY_WH,
                      "dailyBudgetWei": ETH // 100, "expiry": expiry, "nonce": i}
        b["sig"] = sign_buy_order(b["owner"], b["order"], c.domain)
    c.travel(c.day_start + 1)
    first = c.n0 - 1  # an empty position for the interval before the day, with baselines
    base_at, close_at = c.day_start - INTERVAL_S + 1, c.day_start

    def empty(p: dict, cls):
        baseline = sign_reading(p["meter"], c.readings, p["in"], p["out"], base_at)
        closing = sign_reading(p["meter"], c.readings, p["in"], p["out"], close_at)
        return cls(p["order"], p["sig"], closing, first, first, 0, 0, 0, baseline=baseline)

    batch = Batch(first, [empty(b, BuyPosition) for b in c.buyers],
                  [empty(s, SellPosition) for s in c.sellers])
    c.send(c.settlement.functions.settle(batch.to_tuple()), FIRST)
    for p in c.buyers + c.sellers:
        p.update(last=first, wh=0, wei=0, filled=0)


def run_day(c: Community, due) -> dict:
    """Deliver the day's schedule, settling whoever `due(k, p)` names after each interval."""
    totals = {"settle": 0, "txs": 0, "positions": 0, "refused": 0, "delivered": 0,
              "max_position": 0}
    pool = 0
    for k in range(INTERVALS):
        n = c.n0 + k
        for b in c.buyers:
            b["in"] += BUY_WH
            b.update(wh=b["wh"] + BUY_WH, wei=b["wei"] + PRICE * BUY_WH // 1000,
                     filled=b["filled"] + 1)
        for s in c.sellers:
            s["out"] += SELL_WH
            s["in"] += PV_WH if 24 <= k < 72 else 0
            s.update(wh=s["wh"] + SELL_WH, wei=s["wei"] + PRICE * SELL_WH // 1000,
                     filled=s["filled"] + 1)
        at = (n + 1) * INTERVAL_S
        c.travel(at + 1)
        buys = [b for b in c.buyers if b["wh"] and due(k, b)]
        covered = pool + sum(b["wei"] for b in buys)
        sells = []
        for s in (s for s in c.sellers if s["wh"] and due(k, s)):
            if s["wei"] <= covered:  # the engine sends only sells the pool can pay
                covered -= s["wei"]
                sells.append(s)
        if not buys and not sells:
            continue
        batch = Batch(n, [position(c, b, n, at, BuyPosition) for b in buys],
                      [position(c, s, n, at, SellPosition) for s in sells])
        gas = c.send(c.settlement.functions.settle(batch.to_tuple()), None)
        refused = c.settlement.events.PositionRefused().process_receipt(c.last_receipt,
                                                                        errors=DISCARD)
        totals["refused"] += len(refused)
        totals.update(settle=totals["settle"] + gas, txs=totals["txs"] + 1,
                      positions=totals["positions"] + len(buys) + len(sells))
        totals["max_position"] = max(totals["max_position"], gas // (len(buys) + len(sells)))
        pool = covered
        for p in buys + sells:
            if p in buys:
                totals["delivered"] += p["wh"]
            p.update(last=n, wh=0, wei=0, filled=0)
    other = sum(c.send(c.escrow.functions.withdrawOwed(), None, s["owner"].address)
                for s in c.sellers)
    totals["other"] = other
    return totals


def position(c: Community, p: dict, n: int, at: int, cls):
    closing = sign_reading(p["meter"], c.readings, p["in"], p["out"], at)
    return cls(p["order"], b"", closing, p["last"] + 1, n, p["filled"], p["wh"], p["wei"])


STRATEGIES = {
    "per interval": lambda k, p: True,
    "hourly": lambda k, p: k % 4 == 3,
    "daily": lambda k, p: k == INTERVALS - 1,
    "per kWh": lambda k, p: p["wh"] >= 1_000 or k == INTERVALS - 1,
}


def main() -> None:
    c = Community()
    setup(c)
    snapshot = c.tester.take_snapshot()
    state = [dict(p) for p in c.buyers + c.sellers]
    rows = {}
    for name, due in STRATEGIES.items():
        c.tester.revert_to_snapshot(snapshot)
        for p, saved in zip(c.buyers + c.sellers, state, strict=True):
            p.clear()
            p.update(saved)
        rows[name] = run_day(c, due)
    print(f"community market settlement gas: {SELLERS} sellers, {BUYERS} buyers, one day of "
          f"{INTERVALS} intervals (py-evm, prague)")
    print("setup, once (reported apart):")
    for kind, gas in c.setup.items():
        print(f"  {kind:<40}{gas:>14,}")
    print(f"{'settled':<14}{'txs':>5}{'positions':>10}{'refused':>8}{'kWh':>8}"
          f"{'settle/kWh':>12}{'mint/kWh':>10}{'other/kWh':>11}{'total/kWh':>11}"
          f"{'max gas/pos':>12}")
    for name, t in rows.items():
        kwh = t["delivered"] / 1000
        total = (t["settle"] + t["other"]) / kwh
        print(f"{name:<14}{t['txs']:>5}{t['positions']:>10}{t['refused']:>8}{kwh:>8.1f}"
              f"{t['settle'] / kwh:>12,.0f}{0:>10,}{t['other'] / kwh:>11,.0f}{total:>11,.0f}"
              f"{t['max_position']:>12,}")
    first = c.setup[FIRST]
    print(f"{'with first':<14}  each participant's first settlement ({first:,} gas) counted "
          "in the day:")
    for name, t in rows.items():
        kwh = t["delivered"] / 1000
        day_gas = t["settle"] + t["other"] + first
        print(f"{name:<14}{'':>62}{day_gas / kwh:>11,.0f}")
    best = min((t["settle"] + t["other"]) / (t["delivered"] / 1000) for t in rows.values())
    per_kwh = rows["per kWh"]
    kwh = per_kwh["delivered"] / 1000
    figure = (per_kwh["settle"] + per_kwh["other"]) / kwh
    with_first = figure + first / kwh
    print(f"goal <= {GOAL:,} gas per delivered kWh: per-kWh settlement {figure:,.0f} "
          f"({'met' if figure <= GOAL else 'NOT met'}) with the first settlements as setup, "
          f"{with_first:,.0f} ({'met' if with_first <= GOAL else 'NOT met'}) with them in the "
          f"day; cheapest schedule {best:,.0f}")


if __name__ == "__main__":
    main()
