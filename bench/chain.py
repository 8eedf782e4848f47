"""Throughput of the app's transaction layer vs raw web3 sends, on embedded and anvil, in one run.

For each backend: N signed Ether transfers, then N delivery reports on an open deal, each sent
and awaited one after the other, once through geth_private.TxManager (nonce manager, records,
receipt tracking) and once as bare `send_raw_transaction` + `wait_for_transaction_receipt`.
Goal: the app's layer reaches at least 0.8x the raw rate. Run: .venv/bin/python bench/chain.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.bindings import sign_bid  # noqa: E402
from geth_private import TxManager, backend_from_uri  # noqa: E402
from geth_private.anvil import find_anvil  # noqa: E402
from marketplace.contract_enums import EscrowMarket  # noqa: E402
from marketplace.ledger import CONSUMER, GAS, PRODUCER, Ledger  # noqa: E402
from marketplace.market import DEFAULT_SETTINGS  # noqa: E402

N = 200
ETH = 10**18


class Raw:
    """Bare web3: sign locally, send raw, wait for the receipt; nonces counted by hand."""

    def __init__(self, w3, account):
        self.w3, self.account = w3, account
        self.nonce = w3.eth.get_transaction_count(account.address, "pending")
        self.chain_id = w3.eth.chain_id
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        self.fees = {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9}

    def transact(self, tx):
        signed = self.account.sign_transaction(
            {"chainId": self.chain_id, "value": 0, **tx, "nonce": self.nonce, **self.fees})
        self.nonce += 1
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.005)


def rates(app, raw, n=N, rounds=8):
    """(app rate, raw rate): the two alternate in rounds, so drift on a shared machine
    (other load, a growing chain) hits both alike."""
    spent = {"app": 0.0, "raw": 0.0}
    per_round = n // rounds
    for r in range(rounds):
        for name, fn in (("app", app), ("raw", raw)):
            start = time.perf_counter()
            for i in range(r * per_round, (r + 1) * per_round):
                fn(i)
            spent[name] += time.perf_counter() - start
    return n / spent["app"], n / spent["raw"]


def setup(uri, data_dir):
    backend = backend_from_uri(uri, data_dir)
    backend.start()
    ledger = Ledger(TxManager(backend), backend.faucet())
    ledger.deploy(DEFAULT_SETTINGS.escrow_notice_s())
    seller, buyer, seller_meter, meter_a, meter_b = (Account.create() for _ in range(5))
    for account in (seller, buyer, seller_meter, meter_a, meter_b):
        ledger.fund(account.address, 10 * ETH)
    ledger.enroll_meter(seller_meter.address, seller.address, PRODUCER, 10**9)
    # Two meters of the same buyer, so each way of sending has its own nonce sequence.
    ledger.enroll_meter(meter_a.address, buyer.address, CONSUMER, 10**9)
    ledger.enroll_meter(meter_b.address, buyer.address, CONSUMER, 10**9)
    time.sleep(1.1)  # let the mint cap grow (rated power x time)
    ledger.wait(ledger.mint_reading(seller_meter, 4 * N))
    # The seller and the buyer sign their own approval, deposit and bids.
    approve = ledger.user_tx("EnergyToken", "approve", [ledger.escrow.address, 4 * N])
    ledger.wait(ledger.txm.send(seller, approve, "approve"))
    deposit = ledger.user_tx("EnergyEscrow", "deposit", [EscrowMarket.LOTS], 5 * ETH)
    ledger.wait(ledger.txm.send(buyer, deposit, "deposit"))
    deals = []
    for listing in (1, 2):
        bid = {"listingId": listing, "buyer": buyer.address, "seller": seller.address,
               "priceWeiPerKWh": 10**15, "maxWh": 2 * N, "nonce": listing,
               "expiry": int(time.time()) + 3600}
        record = ledger.open_deal_async(bid, sign_bid(buyer, *ledger.bid_domain(), bid), 2 * N,
                                        int(time.time()) + 3600)
        ledger.wait(record)
        deals.append(ledger.deal_id_from(record))
    return backend, ledger, (meter_a, meter_b), deals


def measure(uri):
    with tempfile.TemporaryDirectory() as data:
        backend, ledger, (meter_a, meter_b), (deal_a, deal_b) = setup(uri, data)
        try:
            txm, w3 = ledger.txm, ledger.w3
            sender, raw_sender, to = Account.create(), Account.create(), Account.create().address
            ledger.fund(sender.address, 10 * ETH)
            ledger.fund(raw_sender.address, 10 * ETH)
            transfer = {"to": to, "value": 1, "gas": GAS["transfer"]}
            raw = Raw(w3, raw_sender)
            app_transfer, raw_transfer = rates(
                lambda i: txm.transact(sender, transfer, "bench transfer"),
                lambda i: raw.transact(transfer),
            )
            raw_meter = Raw(w3, meter_b)
            data_of = lambda i: ledger.escrow.encode_abi("reportDelivery", args=[deal_b, i + 1])  # noqa: E731
            app_report, raw_report = rates(
                lambda i: ledger.wait(ledger.report_delivery(meter_a, deal_a, i + 1)),
                lambda i: raw_meter.transact(
                    {"to": ledger.escrow.address, "data": data_of(i), "gas": GAS["reportDelivery"]}
                ),
            )
        finally:
            backend.stop()
    return {"transfer": (app_transfer, raw_transfer), "delivery report": (app_report, raw_report)}


def main():
    backends = ["embedded://"] + (["anvil://"] if find_anvil() else [])
    print(f"transactions per second, {N} sent and awaited one after another, "
          "TxManager and raw alternating in rounds (higher is better)")
    print(f"{'backend':<12}{'kind':<17}{'TxManager':>11}{'raw web3':>10}{'ratio':>7}")
    for uri in backends:
        for kind, (app, raw) in measure(uri).items():
            print(f"{uri:<12}{kind:<17}{app:>11.1f}{raw:>10.1f}{app / raw:>7.2f}")
    if not find_anvil():
        print("(anvil not installed: `npm ci` installs it)")


if __name__ == "__main__":
    main()
