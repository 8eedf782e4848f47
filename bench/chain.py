"""Throughput of the app's transaction layer vs raw web3 sends, on embedded and anvil, in one run.

For each backend: N signed Ether transfers, then N delivery reports on an open deal (each
carrying both meters' signed readings), each sent and awaited one after the other, once through
geth_private.TxManager (nonce manager, records, receipt tracking) and once as bare
`send_raw_transaction` + `wait_for_transaction_receipt`.
Goal: the app's layer reaches at least 0.8x the raw rate. Run: .venv/bin/python bench/chain.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.bindings import offer_hash, reading_tuple, sign_bid, sign_offer  # noqa: E402
from firmware_bridge.signing import sign_reading  # noqa: E402
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


def enroll(ledger, meter, owner, kind, rated_w):
    """Enroll a meter with its owner's signed consent."""
    deadline = ledger.head_timestamp() + 600
    typed = ledger.consent_typed_data(meter.address, owner.address, kind, rated_w, deadline)
    consent = owner.sign_typed_data(full_message=typed).signature
    ledger.enroll_meter(meter.address, owner.address, kind, rated_w, deadline, consent)


def setup(uri, data_dir):
    backend = backend_from_uri(uri, data_dir)
    backend.start()
    ledger = Ledger(TxManager(backend), backend.faucet())
    settings = DEFAULT_SETTINGS
    ledger.deploy(settings.escrow_notice_s(), settings.deal_ttl_s, 10**6)
    seller, buyer, seller_meter, meter_a, meter_b = (Account.create() for _ in range(5))
    for account in (seller, buyer):  # meters need no Ether
        ledger.fund(account.address, 10 * ETH)
    enroll(ledger, seller_meter, seller, PRODUCER, 10**6)
    # Two meters of the same buyer, one deal each: each way of sending reports on its own.
    enroll(ledger, meter_a, buyer, CONSUMER, 10**6)
    enroll(ledger, meter_b, buyer, CONSUMER, 10**6)
    # The enrollment's first reading sets the counter (a block a second on, to be after it).
    domain = ledger.reading_domain()
    time.sleep(1.1)
    ledger.fund(Account.create().address, 1)
    baseline = sign_reading(seller_meter, domain, 0, 0, ledger.head_timestamp())
    ledger.wait(ledger.mint_readings_async([baseline]))
    # Let the mint cap grow (rated power x time): 4 N Wh at 1 MW take 2.9 s. A block mined
    # after that (any transaction) gives the reading a chain time that late.
    time.sleep(3.2)
    ledger.fund(Account.create().address, 1)
    reading = sign_reading(seller_meter, domain, 4 * N, 0, ledger.head_timestamp())
    ledger.wait(ledger.mint_readings_async([reading]))
    # The seller and the buyer sign their own approval, deposit, offers and bids.
    approve = ledger.user_tx("EnergyToken", "approve", [ledger.escrow.address, 4 * N])
    ledger.wait(ledger.txm.send(seller, approve, "approve"))
    deposit = ledger.user_tx("EnergyEscrow", "deposit", [EscrowMarket.LOTS], 5 * ETH)
    ledger.wait(ledger.txm.send(buyer, deposit, "deposit"))
    deals = []
    for nonce, meter in ((1, meter_a), (2, meter_b)):
        now = ledger.head_timestamp()
        offer = {"seller": seller.address, "sellerMeter": seller_meter.address,
                 "energyWh": 2 * N, "floorPriceWeiPerKWh": 10**15, "deadline": now + 3600,
                 "nonce": nonce}
        bid = {"offer": offer_hash(*ledger.offer_domain(), offer), "buyer": buyer.address,
               "buyerMeter": meter.address, "priceWeiPerKWh": 10**15, "maxWh": 2 * N,
               "nonce": nonce, "expiry": now + 3600}
        record = ledger.open_deal_async(offer, sign_offer(seller, *ledger.offer_domain(), offer),
                                        bid, sign_bid(buyer, *ledger.bid_domain(), bid), 2 * N)
        ledger.wait(record)
        deals.append(ledger.deal_id_from(record))
    # Every report's readings, signed before the clock starts: counters up by 1 Wh a report.
    at = ledger.head_timestamp()
    sellers = [sign_reading(seller_meter, domain, 0, i, at) for i in range(N + 1)]
    buyers = [[sign_reading(m, domain, i, 0, at) for i in range(N + 1)]
              for m in (meter_a, meter_b)]
    # Only the operator sends a deal's baseline: both go first, untimed (readings 0).
    for deal, meter_readings in zip(deals, buyers, strict=True):
        ledger.wait(ledger.report_delivery_async(deal, sellers[0], meter_readings[0]))
    return backend, ledger, sellers[1:], [b[1:] for b in buyers], deals


def measure(uri):
    with tempfile.TemporaryDirectory() as data:
        backend, ledger, sellers, (buyer_a, buyer_b), (deal_a, deal_b) = setup(uri, data)
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

            def data_of(i):
                args = [deal_b, reading_tuple(sellers[i].struct()), sellers[i].signature,
                        reading_tuple(buyer_b[i].struct()), buyer_b[i].signature]
                return ledger.escrow.encode_abi("reportDelivery", args=args)

            # Anyone may send a report after the baseline: the raw path sends from its own.
            app_report, raw_report = rates(
                lambda i: ledger.wait(ledger.report_delivery_async(deal_a, sellers[i],
                                                                   buyer_a[i])),
                lambda i: raw.transact(
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
