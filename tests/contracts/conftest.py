"""Fixtures for contract tests: an in-process py-evm chain with both contracts deployed."""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD

from contracts import load_artifact
from contracts.bindings import bid_tuple, decode_revert, sign_bid

from .common import (
    CONSUMER,
    DEPOSIT,
    ENERGY,
    LISTING,
    LOTS,
    MINTED,
    NOTICE,
    PRICE,
    PRODUCER,
    ROOT,
    TTL,
)


@dataclass
class Chain:
    """The chain, both contracts and the named accounts of the tests."""

    tester: EthereumTester
    w3: Web3
    token: Any
    escrow: Any
    admin: str
    seller: str
    buyer: str
    seller_meter: str
    buyer_meter: str
    stranger: str

    def send(self, fn: Any, sender: str, value: int = 0) -> Any:
        """Transact a contract function and return its receipt (failing if it reverted)."""
        tx_hash = fn.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def deploy(self, name: str, abi: list, bytecode: str, *args: Any) -> Any:
        """Deploy a contract from the admin account and return its web3 object."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.send(factory.constructor(*args), self.admin)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    def key(self, address: str) -> Any:
        """The local account (private key) of one of the tester's prefunded accounts."""
        index = self.w3.eth.accounts.index(address)
        return Account.from_key(self.tester.backend.account_keys[index].to_bytes())

    def signed_bid(
        self, listing: int = LISTING, price: int = PRICE, max_wh: int = ENERGY,
        buyer: str | None = None, seller: str | None = None, nonce: int = 1,
        expiry: int | None = None, signer: str | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """A bid and the EIP-712 signature its buyer (or `signer`) made of it."""
        bid = {
            "listingId": listing, "buyer": buyer or self.buyer, "seller": seller or self.seller,
            "priceWeiPerKWh": price, "maxWh": max_wh, "nonce": nonce,
            "expiry": expiry if expiry is not None else self.now() + TTL,
        }
        chain_id = self.w3.eth.chain_id
        signature = sign_bid(self.key(signer or bid["buyer"]), chain_id, self.escrow.address, bid)
        return bid, signature

    def open_deal(
        self, energy: int = ENERGY, expires: int | None = None, **bid_fields: Any
    ) -> Any:
        """The operator's openDeal call for a freshly signed standard bid."""
        bid, signature = self.signed_bid(**bid_fields)
        return self.escrow.functions.openDeal(
            bid_tuple(bid), signature, energy, expires or self.now() + TTL
        )

    def enroll_producer(self, meter: str, owner: str, rated_w: int = 3_000) -> None:
        """Enroll a producer meter and let two hours pass, so its mint cap allows 2 × rated Wh."""
        self.send(self.token.functions.enrollMeter(meter, owner, PRODUCER, rated_w), self.admin)
        self.travel_to(self.now() + 2 * 3600)

    def now(self) -> int:
        """The latest block's timestamp."""
        return self.w3.eth.get_block("latest")["timestamp"]

    def travel_to(self, timestamp: int) -> None:
        """Move chain time forward and mine a block at that time."""
        self.tester.time_travel(timestamp)
        self.tester.mine_blocks()

    def events(self, receipt: Any, contract: Any, name: str) -> list[dict[str, Any]]:
        """The arguments of every `name` event a receipt holds."""
        event = getattr(contract.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]


@pytest.fixture(scope="session")
def chain() -> Chain:
    """A fresh py-evm chain with EnergyToken and EnergyEscrow deployed and wired."""
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    admin, seller, buyer, seller_meter, buyer_meter, stranger = w3.eth.accounts[:6]
    c = Chain(tester, w3, None, None, admin, seller, buyer, seller_meter, buyer_meter, stranger)
    token, escrow = load_artifact("EnergyToken"), load_artifact("EnergyEscrow")
    c.token = c.deploy("EnergyToken", token.abi, token.bytecode, admin)
    c.escrow = c.deploy(
        "EnergyEscrow", escrow.abi, escrow.bytecode, c.token.address, admin, NOTICE
    )
    role = c.token.functions.ESCROW_ROLE().call()
    c.send(c.token.functions.grantRole(role, c.escrow.address), admin)
    return c


@pytest.fixture(autouse=True)
def isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    """Revert the chain to its state before each test that uses it."""
    if "chain" not in request.fixturenames:
        yield
        return
    chain: Chain = request.getfixturevalue("chain")
    snapshot = chain.tester.take_snapshot()
    yield
    chain.tester.revert_to_snapshot(snapshot)


@pytest.fixture
def enrolled(chain: Chain) -> Chain:
    """Both meters enrolled; the seller's meter has measured MINTED Wh; the buyer prepaid."""
    token, escrow = chain.token.functions, chain.escrow.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.enrollMeter(chain.buyer_meter, chain.buyer, CONSUMER, 500), chain.admin)
    chain.send(token.mintReading(MINTED), chain.seller_meter)
    chain.send(escrow.deposit(LOTS), chain.buyer, value=DEPOSIT)
    return chain


@pytest.fixture
def deal(enrolled: Chain) -> int:
    """The id of an open deal: ENERGY Wh at PRICE from seller to buyer for LISTING."""
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    receipt = chain.send(chain.open_deal(), chain.admin)
    (opened,) = chain.events(receipt, chain.escrow, "DealOpened")
    return opened["dealId"]


def revert_data(err: BaseException) -> bytes | None:
    """The raw revert bytes of an eth-tester failure (it only keeps their repr in a string)."""
    while err is not None:
        for arg in err.args:
            if isinstance(arg, bytes | bytearray):
                return bytes(arg)
            if isinstance(arg, str) and arg.startswith("execution reverted: b"):
                return ast.literal_eval(arg.removeprefix("execution reverted: "))
        err = err.__cause__ or err.__context__
    return None


@pytest.fixture
def reverts(chain: Chain) -> Callable[[str], Any]:
    """reverts("ErrorName(args)") -> a context manager asserting the decoded custom error."""

    @contextmanager
    def _reverts(expected: str) -> Iterator[None]:
        with pytest.raises(TransactionFailed) as info:
            yield
        data = revert_data(info.value)
        assert data is not None, f"no revert data in {info.value!r}"
        decoded = decode_revert(chain.w3, data)
        if "(" in expected:
            assert decoded == expected
        else:
            assert decoded is not None and decoded.split("(")[0] == expected, decoded

    return _reverts


@pytest.fixture(scope="session")
def compile_check() -> subprocess.CompletedProcess:
    """`node contracts/compile.js --check --json`, run once a session (it compiles every set)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the staleness check compiles with solc-js")
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.skip("node_modules/solc missing: npm ci")
    return subprocess.run(
        ["node", "contracts/compile.js", "--check", "--json"], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )

