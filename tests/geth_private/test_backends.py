"""One suite for every chain backend here: embedded always, anvil, geth given GETH_BINARY."""

from __future__ import annotations

import os
import time

import pytest
from eth_account import Account

from firmware_bridge.signing import sign_reading
from geth_private import TransactionReverted, TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from geth_private.backend import (
    MINING_TOGGLE,
    ONE_PENDING_PER_SENDER,
    PERSISTENT,
    TIME_TRAVEL,
    TXPOOL,
)
from marketplace.errors import ChainActionFailed
from marketplace.ledger import LOTS, Ledger

ETH = 10**18
NOTICE = 3_600  # the escrow's withdrawal notice here

BACKENDS = [
    pytest.param("embedded://", id="embedded"),
    pytest.param("anvil://?interval=1", id="anvil", marks=pytest.mark.skipif(
        find_anvil() is None, reason="anvil not installed: `npm ci` installs it")),
    pytest.param("geth://", id="geth", marks=pytest.mark.skipif(
        not os.environ.get("GETH_BINARY"),
        reason="set GETH_BINARY to a geth >= 1.13 binary to run the shared suite on geth")),
]


@pytest.fixture(params=BACKENDS)
def chain(request, tmp_path):
    backend = backend_from_uri(request.param, str(tmp_path))
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def ledger(chain):
    ledger = Ledger(TxManager(chain), chain.faucet())
    ledger.deploy(NOTICE, 24 * 3600, 1_000_000)
    return ledger


def funded(ledger, wei=5 * ETH):
    account = Account.create()
    ledger.fund(account.address, wei)
    return account


def own(ledger, account, fn, *args, value=0):
    """The account's own escrow call: simulated first (a revert is raised before anything is
    signed), then signed with its key and sent, as its page or client does."""
    tx = ledger.user_tx("EnergyEscrow", fn, list(args), value)
    ledger.prepare(account.address, tx, fn)
    return ledger.txm.send(account, tx, fn)


def test_a_locally_signed_transfer_arrives(chain, ledger):
    alice, bob = funded(ledger), Account.create()
    receipt = ledger.txm.transact(alice, {"to": bob.address, "value": ETH, "gas": 21_000}, "pay")
    assert receipt["status"] == 1 and chain.w3.eth.get_balance(bob.address) == ETH


def test_a_block_after_an_idle_spell_is_dated_no_earlier_than_its_transaction(chain):
    """A reading signed now must not be "from the future" to the block that carries it:
    eth-tester dated a block when the one before it was mined, however long ago that was."""
    alice, bob = Account.create(), Account.create()
    txm = TxManager(chain)
    txm.transact(chain.faucet(), {"to": alice.address, "value": ETH, "gas": 21_000}, "fund")
    time.sleep(3)  # the chain idles; what is asserted is an order, not a duration
    sent_at = int(time.time())
    receipt = txm.transact(alice, {"to": bob.address, "value": 1, "gas": 21_000}, "pay")
    assert chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] >= sent_at


def test_a_burst_of_blocks_keeps_the_chains_clock_at_the_wall_clock(chain):
    """A block per transaction, each a second after its parent, ran the embedded chain's
    clock ahead of the wall's: a reading signed now was older than the deal it reported on."""
    txm = TxManager(chain)
    for _ in range(6):
        receipt = txm.transact(chain.faucet(), {"to": Account.create().address, "value": 1,
                                                "gas": 21_000}, "pay")
        assert chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] <= int(time.time())


def test_contract_events_are_read_by_polling_logs(chain, ledger):
    poller = ledger.log_poller(0)
    first = [ledger.decode(raw)[0] for raw in poller.poll()]
    assert "RoleGranted" in first  # the deploy granted the escrow its burn role
    assert poller.poll() == []  # the cursor moved past them
    buyer = funded(ledger)
    ledger.wait(own(ledger, buyer, "deposit", LOTS, value=ETH // 10))
    assert [ledger.decode(raw) for raw in poller.poll()] == [
        ("Deposited", {"buyer": buyer.address, "market": LOTS, "amount": ETH // 10})
    ]


def test_mining_off_holds_transactions_until_mining_on(chain, ledger):
    if not chain.has(MINING_TOGGLE):
        pytest.skip(f"{chain.uri} reports no mining toggle")
    alice, bob = funded(ledger), Account.create()
    txm = ledger.txm
    txm.set_mining(False)
    assert chain.is_mining() is False
    head = chain.w3.eth.block_number
    records = [txm.send(alice, {"to": bob.address, "value": 1, "gas": 21_000}, f"t{i}")
               for i in range(3)]
    assert {r.status for r in records} <= {"pending", "queued"}
    assert len(txm.pending(alice.address)) == 3
    if chain.has(TXPOOL):
        assert {r.tx_hash for r in records} <= set(chain.pending_hashes())
    if chain.has(ONE_PENDING_PER_SENDER):
        assert [r.status for r in records] == ["pending", "queued", "queued"]
    time.sleep(0.3)
    assert chain.w3.eth.block_number == head and chain.w3.eth.get_balance(bob.address) == 0
    txm.set_mining(True)
    for record in records:
        txm.wait(record, timeout=10)
    assert chain.w3.eth.get_balance(bob.address) == 3 and txm.pending() == []


def test_reverts_carry_the_decoded_custom_error(chain, ledger):
    stranger = funded(ledger)
    with pytest.raises(ChainActionFailed, match="no withdrawal or move waiting") as refused:
        own(ledger, stranger, "completeWithdrawal", LOTS)  # refused before signing: simulated
    assert refused.value.reason == "NoWithdrawalPending(0)"  # the raw error, for the code
    reading = sign_reading(Account.create(), ledger.reading_domain(), 1, 1, 1)
    record = ledger.report_delivery_async(42, reading, reading)  # unsimulated: mined, failed
    with pytest.raises(TransactionReverted, match=r"DealNotOpen\(42\)"):
        ledger.txm.wait(record)


def test_a_withdrawal_waits_out_the_notice(chain, ledger):
    if not chain.has(TIME_TRAVEL):
        pytest.skip(f"{chain.uri} cannot move its clock")
    buyer = funded(ledger)
    ledger.wait(own(ledger, buyer, "deposit", LOTS, value=ETH))
    ledger.wait(own(ledger, buyer, "requestWithdrawal", LOTS, ETH // 4))
    assert ledger.withdrawal_notice() == NOTICE
    pending = ledger.withdrawal_of(buyer.address)
    assert pending["amount"] == ETH // 4 and pending["to_market"] == 255
    with pytest.raises(ChainActionFailed, match="the withdrawal's notice runs until") as early:
        own(ledger, buyer, "completeWithdrawal", LOTS)
    assert early.value.reason == f"NoticeNotOver({pending['available_at']})"
    assert ledger.escrow_free(buyer.address) == ETH  # asked for, not yet taken
    chain.time_travel(pending["available_at"])
    chain.mine()
    ledger.wait(own(ledger, buyer, "completeWithdrawal", LOTS))
    assert ledger.escrow_free(buyer.address, LOTS) == ETH - ETH // 4
    assert ledger.withdrawal_of(buyer.address) == {"amount": 0, "available_at": 0, "to_market": 0}


def test_state_survives_a_restart(chain, ledger):
    if not chain.has(PERSISTENT):
        pytest.skip(f"{chain.uri} keeps nothing across restarts")
    alice = funded(ledger, 3 * ETH)
    token = ledger.token.address
    chain.stop()  # a clean stop writes the state
    chain.start()
    assert chain.w3.eth.get_balance(alice.address) == 3 * ETH
    assert chain.w3.eth.get_code(token) != b""
    if not hasattr(chain, "kill"):
        return
    bob = funded(Ledger(TxManager(chain), chain.faucet()), 2 * ETH)
    time.sleep(chain.state_interval + 1.5)  # the periodic dump covers a crash after it
    chain.kill()  # kill -9: no chance to save on the way out
    chain.start()
    assert chain.w3.eth.get_balance(bob.address) == 2 * ETH


def test_a_dropped_transaction_is_sent_again(chain, ledger):
    if not chain.has(TXPOOL) or not hasattr(chain, "drop_transaction"):
        pytest.skip(f"{chain.uri} cannot drop a transaction from its pool")
    alice, bob = funded(ledger), Account.create()
    txm = ledger.txm
    txm.resubmit_after = 0.0
    txm.set_mining(False)
    record = txm.send(alice, {"to": bob.address, "value": 7, "gas": 21_000}, "dropped")
    chain.drop_transaction(record.tx_hash)
    assert record.tx_hash not in chain.pending_hashes()
    txm.poll()  # notices the node lost it and sends the same signed bytes again
    assert record.tx_hash in chain.pending_hashes()
    txm.set_mining(True)
    txm.wait(record, timeout=10)
    assert chain.w3.eth.get_balance(bob.address) == 7


@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed: `npm ci` installs it")
def test_anvil_goes_when_the_portal_is_killed(tmp_path):
    """kill -9 of the portal: its anvil saves its state and exits; nothing is left running."""
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from geth_private import backend_from_uri, TxManager\n"
        "from eth_account import Account\n"
        "b = backend_from_uri('anvil://?interval=60', sys.argv[1]); b.start()\n"
        "t = TxManager(b); a = Account.from_key('0x' + '11' * 32)\n"
        "t.transact(b.faucet(), {'to': a.address, 'value': 123, 'gas': 21000}, 'x')\n"
        "print(open(b.pid_path).read().strip(), flush=True); time.sleep(60)\n"
    )
    portal = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    anvil_pid = int(portal.stdout.readline())
    portal.kill()  # SIGKILL: the portal cannot clean up
    portal.wait()
    from tests.common import wait_for

    wait_for(lambda: not os.path.exists(f"/proc/{anvil_pid}"), what="anvil to exit")
    chain = backend_from_uri("anvil://", str(tmp_path))
    chain.start()
    try:  # the state was saved on the way out, though the interval (60 s) never came
        assert chain.w3.eth.get_balance(Account.from_key("0x" + "11" * 32).address) == 123
    finally:
        chain.stop()
