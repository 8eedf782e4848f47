"""Fixtures for contract tests: an in-process py-evm chain with the contracts deployed."""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD

from contracts import load_artifact
from contracts.bindings import (
    bid_tuple,
    decode_revert,
    offer_hash,
    offer_tuple,
    reading_tuple,
    sign_bid,
    sign_consent,
    sign_offer,
    sign_reading_struct,
)

from .common import (
    ANYONE_AFTER,
    BUYER_BASE,
    COMMUNITY,
    COMMUNITY_DEPOSIT,
    CONSUMER,
    DAY_S,
    DEAL_DURATION,
    DEPOSIT,
    ENERGY,
    FLOOR,
    INTERVAL_S,
    LINE_LOSS_BPS,
    LOTS,
    MAX_RATED_W,
    MINTED,
    NOTICE,
    PRICE,
    PRODUCER,
    PRODUCER_W,
    ROOT,
    SELLER_BASE,
    TTL,
    Day,
    first_of_five,
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
    settlement: Any = None  # IntervalSettlement, wired to both contracts
    keys: dict[str, Any] = field(default_factory=dict)  # accounts made by new_account()

    def new_account(self) -> str:
        """A fresh key that only signs (a meter, or an owner whose calls others send)."""
        account = Account.create()
        self.keys[account.address] = account
        return account.address

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
        """The local account (private key) of a tester's prefunded account or a new one."""
        if address in self.keys:
            return self.keys[address]
        index = self.w3.eth.accounts.index(address)
        return Account.from_key(self.tester.backend.account_keys[index].to_bytes())

    @property
    def chain_id(self) -> int:
        """The chain's id (every EIP-712 domain names it)."""
        return self.w3.eth.chain_id

    # -- meters ------------------------------------------------------------------------------

    def enroll_fn(
        self, meter: str, owner: str, kind: int, rated_w: int, signer: str | None = None,
        deadline: int | None = None, changed: dict[str, Any] | None = None,
    ) -> Any:
        """The admin's enrollMeter with the MeterConsent `signer` (default: the owner) signed.

        `changed` alters the terms sent after signing (meter, owner, kind, ratedPowerW, deadline).
        """
        consent = {"meter": meter, "owner": owner, "kind": kind, "ratedPowerW": rated_w,
                   "deadline": deadline if deadline is not None else self.now() + TTL}
        signature = sign_consent(self.key(signer or owner), self.chain_id, self.token.address,
                                 consent)
        sent = {**consent, **(changed or {})}
        return self.token.functions.enrollMeter(
            sent["meter"], sent["owner"], sent["kind"], sent["ratedPowerW"], sent["deadline"],
            signature,
        )

    def enroll(self, meter: str, owner: str, kind: int, rated_w: int, **kwargs: Any) -> Any:
        """Enroll a meter with its owner's signed consent; the receipt."""
        return self.send(self.enroll_fn(meter, owner, kind, rated_w, **kwargs), self.admin)

    def enroll_producer(self, meter: str, owner: str, rated_w: int = PRODUCER_W,
                        signer: str | None = None) -> None:
        """Enroll a producer meter, send its baseline reading (counter 0) and let an hour
        pass: its next reading may mint rated_w Wh."""
        self.enroll(meter, owner, PRODUCER, rated_w, signer=signer)
        self.baseline(meter)
        self.travel_to(self.now() + 3600)

    def baseline(self, meter: str, wh_in: int = 0) -> Any:
        """Ten seconds on, the enrollment's first reading: it sets the counter, mints nothing."""
        # An idle chain's next block is stamped at wall time, maybe later than now() + 10.
        pending = self.w3.eth.get_block("pending")["timestamp"]
        self.travel_to(max(self.now() + 10, pending + 1))
        return self.mint(meter, wh_in)

    def reading(
        self, meter: str, wh_in: int = 0, wh_out: int = 0, at: int | None = None,
        signer: str | None = None,
    ) -> tuple[tuple, bytes]:
        """(Reading tuple, signature) of a meter's counters at `at` (default: the head's time)."""
        struct = {"meter": meter, "whIn": wh_in, "whOut": wh_out,
                  "timestamp": at if at is not None else self.now()}
        signature = sign_reading_struct(self.key(signer or meter), self.chain_id,
                                        self.token.address, struct)
        return reading_tuple(struct), signature

    def mint_fn(self, *readings: tuple[tuple, bytes]) -> Any:
        """mintReadings of signed readings (anyone may send it)."""
        return self.token.functions.mintReadings([r for r, _ in readings],
                                                 [s for _, s in readings])

    def mint(self, meter: str, wh_in: int, at: int | None = None) -> Any:
        """A stranger sends one signed reading of a producer meter to be minted; the receipt."""
        return self.send(self.mint_fn(self.reading(meter, wh_in, at=at)), self.stranger)

    # -- offers, bids and deals ----------------------------------------------------------

    def signed_offer(
        self, seller: str | None = None, seller_meter: str | None = None, energy: int = ENERGY,
        floor: int = FLOOR, deadline: int | None = None, nonce: int = 1,
        signer: str | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """An offer and the EIP-712 signature its seller (or `signer`) made of it."""
        offer = {"seller": seller or self.seller, "sellerMeter": seller_meter or self.seller_meter,
                 "energyWh": energy, "floorPriceWeiPerKWh": floor,
                 "deadline": deadline if deadline is not None else self.now() + TTL,
                 "nonce": nonce}
        key = self.key(signer or offer["seller"])
        return offer, sign_offer(key, self.chain_id, self.escrow.address, offer)

    def offer_hash(self, offer: dict[str, Any]) -> bytes:
        """An offer's EIP-712 hash (what a bid names)."""
        return offer_hash(self.chain_id, self.escrow.address, offer)

    def signed_bid(
        self, offer: dict[str, Any] | bytes, price: int = PRICE, max_wh: int = ENERGY,
        buyer: str | None = None, buyer_meter: str | None = None, nonce: int = 1,
        expiry: int | None = None, signer: str | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """A bid on an offer (or an offer hash) and the signature its buyer (or `signer`) made."""
        named = offer if isinstance(offer, bytes) else self.offer_hash(offer)
        bid = {"offer": named, "buyer": buyer or self.buyer,
               "buyerMeter": buyer_meter or self.buyer_meter, "priceWeiPerKWh": price,
               "maxWh": max_wh, "nonce": nonce,
               "expiry": expiry if expiry is not None else self.now() + TTL}
        key = self.key(signer or bid["buyer"])
        return bid, sign_bid(key, self.chain_id, self.escrow.address, bid)

    def open_with(self, offer: tuple[dict, bytes], bid: tuple[dict, bytes],
                  energy: int = ENERGY) -> Any:
        """The operator's openDeal of a signed offer and a signed bid."""
        return self.escrow.functions.openDeal(offer_tuple(offer[0]), offer[1],
                                              bid_tuple(bid[0]), bid[1], energy)

    def open_deal(self, energy: int = ENERGY, offer: dict[str, Any] | None = None,
                  **bid_fields: Any) -> Any:
        """openDeal of the standard offer (or one with `offer`'s fields) and a bid on it."""
        signed = self.signed_offer(**(offer or {}))
        return self.open_with(signed, self.signed_bid(signed[0], **bid_fields), energy)

    def deal(self, deal_id: int) -> dict[str, Any]:
        """A deal as a dict keyed by the Deal struct's field names."""
        fields = self.escrow.functions.getDeal(deal_id).call()
        (getter,) = [f for f in self.escrow.abi if f.get("name") == "getDeal"]
        names = [c["name"] for c in getter["outputs"][0]["components"]]
        return dict(zip(names, fields, strict=True))

    def report_fn(
        self, deal_id: int, buyer_wh: int, seller_wh: int, at: int | None = None,
        buyer_meter: str | None = None, seller_meter: str | None = None,
        buyer_at: int | None = None,
    ) -> Any:
        """reportDelivery with both meters' readings (buyer whIn, seller whOut) signed at `at`."""
        deal = self.deal(deal_id)
        seller = self.reading(seller_meter or deal["sellerMeter"], wh_out=seller_wh, at=at)
        buyer = self.reading(buyer_meter or deal["buyerMeter"], wh_in=buyer_wh,
                             at=buyer_at if buyer_at is not None else at)
        return self.escrow.functions.reportDelivery(deal_id, seller[0], seller[1], buyer[0],
                                                    buyer[1])

    def start(self, deal_id: int) -> Any:
        """The operator's baseline report (buyer meter at BUYER_BASE, seller at SELLER_BASE)."""
        return self.send(self.report_fn(deal_id, BUYER_BASE, SELLER_BASE), self.admin)

    def deliver(self, deal_id: int, cumulative: int) -> Any:
        """Report `cumulative` Wh delivered since the baseline (sent first if need be)."""
        if not self.deal(deal_id)["started"]:
            self.start(deal_id)
        fn = self.report_fn(deal_id, BUYER_BASE + cumulative, SELLER_BASE + cumulative)
        return self.send(fn, self.stranger)

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
    # What eth-tester's middleware would guess for a call without `from` (accounts[0]), named
    # once: the guess asked the node for every account on each call.
    w3.eth.default_account = admin
    c = Chain(tester, w3, None, None, admin, seller, buyer, seller_meter, buyer_meter, stranger)
    token, escrow = load_artifact("EnergyToken"), load_artifact("EnergyEscrow")
    c.token = c.deploy("EnergyToken", token.abi, token.bytecode, admin, MAX_RATED_W)
    c.escrow = c.deploy(
        "EnergyEscrow", escrow.abi, escrow.bytecode, c.token.address, admin, NOTICE,
        DEAL_DURATION,
    )
    role = c.token.functions.ESCROW_ROLE().call()
    c.send(c.token.functions.grantRole(role, c.escrow.address), admin)
    settlement = load_artifact("IntervalSettlement")
    c.settlement = c.deploy(
        "IntervalSettlement", settlement.abi, settlement.bytecode, c.token.address,
        c.escrow.address, admin, ANYONE_AFTER, INTERVAL_S, INTERVAL_S, LINE_LOSS_BPS,
    )
    for target in (c.token, c.escrow):
        role = target.functions.SETTLEMENT_ROLE().call()
        c.send(target.functions.grantRole(role, c.settlement.address), admin)
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
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.enroll(chain.buyer_meter, chain.buyer, CONSUMER, 500)
    chain.mint(chain.seller_meter, MINTED)
    chain.send(chain.escrow.functions.deposit(LOTS), chain.buyer, value=DEPOSIT)
    return chain


@pytest.fixture
def deal(enrolled: Chain) -> int:
    """The id of an open deal (delivery not started): ENERGY Wh at PRICE, seller to buyer."""
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


def _compile_inputs_sha256() -> str:
    """A digest of all the staleness check reads: the sources, the committed sets, the
    compiler script, the npm lock file and the installed solc's and OpenZeppelins' versions."""
    digest = hashlib.sha256()
    modules = ROOT / "node_modules"
    paths = sorted([*(ROOT / "contracts" / "src").glob("*.sol"),
                    *(ROOT / "contracts" / "artifacts").glob("*/*.json"),
                    ROOT / "contracts" / "compile.js", ROOT / "package-lock.json",
                    modules / "solc" / "package.json",
                    *modules.glob("@openzeppelin/contracts*/package.json")])
    for path in paths:
        digest.update(f"{path.relative_to(ROOT)}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="session")
def compile_check(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """`node contracts/compile.js --check --json`, run once a test run (it compiles every set):
    the first xdist worker to ask runs it, the others read its answer from the run's temp dir."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the staleness check compiles with solc-js")
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.skip("node_modules/solc missing: npm ci")
    command = ["node", "contracts/compile.js", "--check", "--json"]
    # Under xdist each worker's base temp dir sits in the run's shared one.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    answer = shared / "compile-check.json"
    # A later run on the same inputs reads the answer of the first (var/ is the build dir
    # `make clean` empties; CI's clean clone has none, so it always compiles there).
    cached = ROOT / "var" / "compile-check" / f"{_compile_inputs_sha256()}.json"
    with open(shared / "compile-check.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not answer.exists() and cached.exists():
            shutil.copyfile(cached, answer)
        if not answer.exists():
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
            answer.write_text(json.dumps([done.returncode, done.stdout, done.stderr]))
            if done.returncode == 0:  # only a clean answer is kept: a stale one is fixed next
                cached.parent.mkdir(parents=True, exist_ok=True)
                partial = cached.with_suffix(f".{os.getpid()}.tmp")  # others read it whole
                shutil.copyfile(answer, partial)
                os.replace(partial, cached)
    code, out, err = json.loads(answer.read_text())
    return subprocess.CompletedProcess(command, code, out, err)



@pytest.fixture
def day(chain: Chain) -> Day:
    """The community market's day: the seller's meter enrolled (its token baseline an hour
    ago), the buyer's enrolled and COMMUNITY_DEPOSIT in the buyer's community escrow."""
    return open_day(chain)


@pytest.fixture
def day_start(chain: Chain) -> Day:
    """The `day` fixture's community with its chain's time in the second interval of a day."""
    # open_day lets an hour and some seconds pass (the seller meter's mint window).
    return open_day(_ahead_to(chain, INTERVAL_S + 100 - 3_600))


@pytest.fixture
def day_mid(chain: Chain) -> Day:
    """The `day` fixture's community with its chain's time in a day's eleventh interval: a
    test's positions up to n+6 lie in the same day as n (the `day` fixture promises n+4)."""
    return open_day(_ahead_to(chain, 10 * INTERVAL_S + 100 - 3_600))


def _ahead_to(chain: Chain, offset_s: int) -> Chain:
    """chain moved to the first day start + offset_s (maybe negative) still ahead of its time:
    a chain's time never goes back (late in a UTC day, the next day's start less an hour is
    behind it)."""
    at = (chain.now() // DAY_S + 1) * DAY_S + offset_s
    chain.travel_to(at if at > chain.now() else at + DAY_S)
    return chain


def open_day(chain: Chain) -> Day:
    """The `day` fixture's community on `chain` at the chain's present time."""
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.enroll(chain.buyer_meter, chain.buyer, CONSUMER, 500)
    chain.send(chain.escrow.functions.deposit(COMMUNITY), chain.buyer, value=COMMUNITY_DEPOSIT)
    t0 = chain.now()
    return Day(chain, t0, first_of_five(t0, INTERVAL_S))
