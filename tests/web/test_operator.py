"""The operator's key: generated on first run, its own passphrase, the faucet only funds."""

from __future__ import annotations

import json
import stat
import time

import pytest

from contracts.bindings import bid_tuple, offer_hash, offer_tuple, sign_bid, sign_offer
from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from geth_private.errors import ChainError
from marketplace.ledger import CONSUMER, Ledger
from marketplace.settings import Settings
from web.runtime.chain import deploy_or_attach
from web.runtime.operator import OperatorKeyError

ETH = 10**18
needs_anvil = pytest.mark.skipif(find_anvil() is None,
                                 reason="anvil not installed: `npm ci` installs it")


def _config(tmp_path, **extra):
    return {"TESTING": True, "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
            "SECRET_KEY": "test", "DATA_DIR": str(tmp_path / "var"), "SCRYPT_N": 2**10,
            "DEMO_ACCOUNTS": False, **extra}


def _started(config):
    from web import create_app, start_runtime

    return start_runtime(create_app(config))


def _offer(seller, meter):
    return {"seller": seller, "sellerMeter": meter, "energyWh": 10,
            "floorPriceWeiPerKWh": 10**15, "deadline": int(time.time()) + 3600, "nonce": 1}


def _bid(runtime, buyer, offer_hash_):
    return {"offer": offer_hash_, "buyer": buyer.address, "buyerMeter": buyer.address,
            "priceWeiPerKWh": 10**15, "maxWh": 10, "nonce": 1,
            "expiry": int(time.time()) + 3600}


@pytest.mark.parametrize("app", ["embedded://", "anvil://"], indirect=True)
def test_the_faucet_only_funds_and_holds_no_role(app, runtime):
    ledger, faucet = runtime.ledger, runtime.backend.faucet()
    operator = ledger.operator.address
    assert operator != faucet.address
    assert runtime.keystore.path_of(operator).exists()  # a key of this portal's own
    assert ledger.roles_of(faucet.address) == dict.fromkeys(ledger.roles_of(operator), False)
    assert all(ledger.roles_of(operator).values())
    assert ledger.eth_balance(operator) >= app.config["OPERATOR_FUNDS_ETH"] * ETH // 2

    # What the holder of anvil's published key tried: open a deal from a real signed bid,
    # enroll a meter of its own. Both revert: the faucet holds no role.
    people = {a["name"]: a for a in runtime.demo_accounts}
    bob = runtime.keystore.unlock(people["bob"]["address"], people["bob"]["passphrase"])
    alice = runtime.keystore.unlock(people["alice"]["address"], people["alice"]["passphrase"])
    offer = _offer(alice.address, alice.address)
    offer_sig = sign_offer(alice, *ledger.offer_domain(), offer)
    bid = _bid(runtime, bob, offer_hash(*ledger.offer_domain(), offer))
    signature = sign_bid(bob, *ledger.bid_domain(), bid)
    escrow, token = ledger.escrow, ledger.token
    attacks = [
        (escrow, "openDeal", [offer_tuple(offer), offer_sig, bid_tuple(bid), signature, 10]),
        (token, "enrollMeter", [faucet.address, faucet.address, CONSUMER, 10**6,
                                int(time.time()) + 600, bytes(65)]),
    ]
    for contract, fn, args in attacks:
        tx = {"to": contract.address, "data": contract.encode_abi(fn, args=args),
              "gas": 400_000}
        with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
            runtime.txm.simulate(faucet.address, tx, fn)
        record = runtime.txm.send(faucet, tx, f"faucet tries {fn}")
        with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
            runtime.txm.wait(record)
    assert ledger.meter_of(faucet.address)["kind"] == 0
    assert ledger.deal_count() == 0


def test_the_operator_is_unlocked_on_later_runs_with_its_own_passphrase(tmp_path):
    first = _started(_config(tmp_path))
    operator = first.ledger.operator.address
    admin = first.admin_accounts[0]
    first.stop()
    data = tmp_path / "var"
    secret_file = data / "operator_passphrase"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_text()) >= 24
    assert json.loads((data / "operator.json").read_text())["address"] == operator
    # The admin's passphrase is generated, shown on this run only, and kept in no file.
    assert admin["passphrase"] and admin["passphrase"] != "admin-demo"
    assert not any(admin["passphrase"] in p.read_text(errors="ignore")
                   for p in data.rglob("*") if p.is_file())
    assert first.keystore.unlock(admin["address"], admin["passphrase"])

    again = _started(_config(tmp_path))
    try:
        assert again.ledger.operator.address == operator
        assert again.admin_accounts[0]["address"] == admin["address"]
        assert again.admin_accounts[0]["passphrase"] is None
        assert all(again.ledger.roles_of(operator).values())
    finally:
        again.stop()

    with pytest.raises(OperatorKeyError, match="GRIDBID_OPERATOR_PASSPHRASE") as wrong:
        _started(_config(tmp_path, OPERATOR_PASSPHRASE="not-the-one"))
    assert operator in str(wrong.value) and "move" in str(wrong.value)
    secret_file.unlink()
    with pytest.raises(OperatorKeyError, match="neither in GRIDBID_OPERATOR_PASSPHRASE"):
        _started(_config(tmp_path))


def test_the_operator_passphrase_may_come_from_the_environment(tmp_path, monkeypatch):
    from web import create_app

    monkeypatch.setenv("GRIDBID_OPERATOR_PASSPHRASE", "1e3")  # kept as typed, not a number
    app = create_app(_config(tmp_path))
    assert app.config["OPERATOR_PASSPHRASE"] == "1e3"
    from web import start_runtime

    runtime = start_runtime(app)
    try:
        operator = runtime.ledger.operator.address
        assert runtime.keystore.unlock(operator, "1e3").address == operator
        assert not (tmp_path / "var" / "operator_passphrase").exists()
    finally:
        runtime.stop()


@needs_anvil
def test_contracts_an_older_operator_deployed_are_replaced(tmp_path):
    # A persistent chain with contracts.json from a portal whose operator was the faucet
    # (main before this change): whoever knows anvil's published key runs those contracts.
    node = backend_from_uri("anvil://", str(tmp_path / "chain"))
    node.start()
    try:
        book = tmp_path / "var" / "contracts.json"
        old = Ledger(TxManager(node), node.faucet())
        # With the notice the new portal uses, so only the operator tells them apart.
        deploy_or_attach(old, node, book, Settings().escrow_notice_s(), Settings().deal_ttl_s,
                         1_000_000)
        old_addresses = json.loads(book.read_text())
        assert all(old.roles_of(node.faucet().address).values())

        runtime = _started(_config(tmp_path, CHAIN_URI=f"http://127.0.0.1:{node.port}"))
        try:
            ledger = runtime.ledger
            assert ledger.addresses()["EnergyEscrow"] != old_addresses["EnergyEscrow"]
            assert json.loads(book.read_text())["EnergyEscrow"] == ledger.escrow.address
            assert all(ledger.roles_of(ledger.operator.address).values())
            assert not any(ledger.roles_of(node.faucet().address).values())
        finally:
            runtime.stop()
    finally:
        node.stop()
