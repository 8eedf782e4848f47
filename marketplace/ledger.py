"""The market's view of the chain: the two contracts, reads, and signed writes with fixed gas."""

from __future__ import annotations

import logging
import time
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.logs import DISCARD

from contracts import load_artifact
from contracts.bindings import bid_tuple, contract, decode_revert
from contracts.evm import evm_version_of
from geth_private import LogPoller, Signer, TxManager, TxRecord
from geth_private.errors import ChainError, TransactionReverted
from geth_private.signed import SignedCall
from marketplace.contract_enums import EscrowMarket, MeterKind
from marketplace.errors import ChainActionFailed, WouldRevert

log = logging.getLogger(__name__)

PRODUCER, CONSUMER = MeterKind.PRODUCER, MeterKind.CONSUMER
LOTS = EscrowMarket.LOTS

# Fixed gas limits, a margin above what each call was measured to use (estimation costs
# ~45 ms a call on the embedded chain, and a delivery step is a hot path).
GAS = {
    "deploy": 5_000_000,
    "grantRole": 120_000,
    "enrollMeter": 160_000,
    "disenrollMeter": 80_000,
    "mintReading": 120_000,
    "approve": 80_000,
    "deposit": 80_000,
    "requestWithdrawal": 80_000,
    "requestMove": 80_000,
    "completeWithdrawal": 100_000,  # a payout to a contract wallet runs its receive()
    "openDeal": 400_000,
    "reportDelivery": 200_000,
    "closeDeal": 200_000,
    "closeDealForFault": 200_000,
    "transfer": 21_000,
}

# What a person sees a signed call as, in the wallet's list.
LABELS = {
    "deposit": "Deposit into escrow",
    "requestWithdrawal": "Ask to withdraw from escrow",
    "requestMove": "Ask to move escrow between markets",
    "completeWithdrawal": "Withdraw from escrow",
    "approve": "Approve tokens for sale",
    "closeDeal": "Close connection",
    "withdrawOwed": "Withdraw payments owed",
}


class Ledger:
    """EnergyToken and EnergyEscrow as the market uses them, over one TxManager."""

    def __init__(self, txm: TxManager, operator: LocalAccount):
        self.txm = txm
        self.operator = operator
        self.token: Any = None
        self.escrow: Any = None
        # (view, address, market) -> (block, value): escrow reads kept for the block read at
        self._cached: dict[tuple[str, str, int], tuple[int, Any]] = {}
        txm.decode_revert = lambda data: decode_revert(self.w3, data)

    @property
    def w3(self) -> Web3:
        """The connected Web3 instance."""
        return self.txm.w3

    # -- setup -----------------------------------------------------------------------------

    def deploy(self, notice_s: int) -> dict[str, str]:
        """Deploy both contracts from the operator and wire the escrow's burn right.

        notice_s: the escrow's withdrawal notice, fixed for its lifetime (seconds between a
        buyer asking for a withdrawal and being able to complete it).
        """
        if not 0 <= notice_s < 2**64:
            raise ValueError(f"the withdrawal notice must fit a uint64, got {notice_s}")
        token = self._deploy("EnergyToken", self.operator.address)
        escrow = self._deploy("EnergyEscrow", token, self.operator.address, notice_s)
        self.attach({"EnergyToken": token, "EnergyEscrow": escrow})
        role = self.token.functions.ESCROW_ROLE().call()
        self._operator_call(self.token, "grantRole", [role, escrow], "Let the escrow burn tokens")
        return self.addresses()

    def attach(self, addresses: dict[str, str]) -> None:
        """Use contracts already deployed at these addresses."""
        self.token = contract(self.w3, "EnergyToken", addresses["EnergyToken"])
        self.escrow = contract(self.w3, "EnergyEscrow", addresses["EnergyEscrow"])

    def fund(self, address: str, wei: int) -> None:
        """Give an account Ether from the chain's faucet (demo and meter accounts)."""
        faucet = self.txm.backend.faucet()
        tx = {"to": address, "value": wei, "gas": GAS["transfer"]}
        self._wait(self.txm.send(faucet, tx, f"Fund {address}"))

    def meter_of(self, meter: str) -> dict[str, Any]:
        """A meter's registry entry (kind 0 when not enrolled)."""
        owner, kind, rated, last, last_mint_at = self.token.functions.meterOf(meter).call()
        return {"owner": owner, "kind": kind, "rated_power_w": rated, "last_reading_wh": last,
                "last_mint_at": last_mint_at}

    def deployed_at(self, addresses: dict[str, str], notice_s: int | None = None) -> bool:
        """Whether both contracts have code at these addresses on this chain (and, given
        notice_s, whether that escrow was deployed with this withdrawal notice)."""
        if not all(
            self.w3.eth.get_code(Web3.to_checksum_address(addresses[name])) not in (b"", None)
            for name in ("EnergyToken", "EnergyEscrow")
        ):
            return False
        if notice_s is None:
            return True
        escrow = contract(self.w3, "EnergyEscrow", addresses["EnergyEscrow"])
        try:
            return escrow.functions.withdrawalNotice().call() == notice_s
        except (ContractLogicError, BadFunctionCallOutput):
            return False  # an escrow built before withdrawals had a notice

    def build_info(self) -> dict[str, str]:
        """How the contracts this node runs were built: compiler, EVM version, OpenZeppelin."""
        # The set deploy() picks for this node (its latest header says which EVM it runs).
        artifact = load_artifact("EnergyEscrow", evm_version_of(self.w3.eth.get_block("latest")))
        return {"compiler": f"solc {artifact.compiler}", "evm_version": artifact.evm_version,
                "openzeppelin": artifact.openzeppelin}

    def roles_of(self, address: str) -> dict[str, bool]:
        """Which of the contracts' admin and operator roles an address holds."""
        admin = self.token.functions.DEFAULT_ADMIN_ROLE().call()
        operator = self.escrow.functions.OPERATOR_ROLE().call()
        return {
            "token_admin": self.token.functions.hasRole(admin, address).call(),
            "escrow_admin": self.escrow.functions.hasRole(admin, address).call(),
            "escrow_operator": self.escrow.functions.hasRole(operator, address).call(),
        }

    def enroll_meter(self, meter: str, owner: str, kind: int, rated_power_w: int) -> None:
        """Enroll a meter account for its owner (admin action)."""
        self._operator_call(
            self.token, "enrollMeter", [meter, owner, kind, rated_power_w], f"Enroll meter {meter}"
        )

    def disenroll_meter(self, meter: str) -> None:
        """Withdraw a meter's enrollment: it can mint or report no more (admin action)."""
        self._operator_call(self.token, "disenrollMeter", [meter], f"Disenroll meter {meter}")

    def addresses(self) -> dict[str, str]:
        """Where the two contracts are (what a meter key may sign transactions for)."""
        return {"EnergyToken": self.token.address, "EnergyEscrow": self.escrow.address}

    # -- reads -----------------------------------------------------------------------------

    def eth_balance(self, address: str) -> int:
        """Ether held by an address, in wei."""
        return self.w3.eth.get_balance(address)

    def token_balance(self, address: str) -> int:
        """Energy tokens held, in Wh (token units)."""
        return self.token.functions.balanceOf(address).call()

    def total_supply(self) -> int:
        """Energy tokens in existence, in Wh."""
        return self.token.functions.totalSupply().call()

    def escrow_free(self, address: str, market: int = LOTS) -> int:
        """A buyer's escrow balance in a market not locked by a deal, in wei (latest block).

        Every bid checks it: the value read at a block is kept until the next block, which
        is the only way it can change, so a burst of bids reads the contract once per block.
        """
        return self._per_block("freeOf", address, market)

    def withdrawal_of(self, address: str, market: int = LOTS) -> dict[str, int]:
        """A buyer's pending withdrawal (to_market OUT) or move on a market; zeros when none.

        Kept per block like escrow_free: a bid checks both.
        """
        amount, available_at, to_market = self._per_block("withdrawalOf", address, market)
        return {"amount": amount, "available_at": available_at, "to_market": to_market}

    def withdrawal_notice(self) -> int:
        """Seconds from a withdrawal request until it can be completed (fixed at deploy)."""
        key = ("withdrawalNotice", self.escrow.address, 0)
        if key not in self._cached:  # immutable in the contract: read once per escrow
            self._cached[key] = (0, self.escrow.functions.withdrawalNotice().call())
        return self._cached[key][1]

    def _per_block(self, view: str, address: str, market: int) -> Any:
        block = self.w3.eth.block_number
        key = (view, address, int(market))
        known = self._cached.get(key)
        if known is not None and known[0] == block:
            return known[1]
        value = getattr(self.escrow.functions, view)(address, int(market)).call(
            block_identifier=block
        )
        self._cached[key] = (block, value)
        return value

    def escrow_locked(self, address: str) -> int:
        """A buyer's escrow balance locked by open deals, in wei."""
        return self.escrow.functions.lockedOf(address).call()

    def chain_deal(self, deal_id: int) -> dict[str, Any]:
        """The escrow's record of a deal."""
        fields = self.escrow.functions.getDeal(deal_id).call()
        names = [o["name"] for o in self._outputs(self.escrow, "getDeal")]
        return dict(zip(names, fields, strict=True))

    def chain_id(self) -> int:
        """The chain's id (EIP-155)."""
        return self.w3.eth.chain_id

    def block_number(self) -> int:
        """The chain head's number."""
        return self.w3.eth.block_number

    # -- what users sign: built and checked here, signed by their owner, queued -------------

    def user_tx(self, contract: str, fn: str, args: list[Any], value: int = 0) -> dict[str, Any]:
        """The call an owner signs: one of the two contracts' functions, with its fixed gas."""
        target = self.token if contract == "EnergyToken" else self.escrow
        return self._tx(target, fn, args, value)

    def prepare(self, sender: str, tx: dict[str, Any], label: str) -> dict[str, Any]:
        """tx simulated from the sender (a revert is a WouldRevert, 409, with the contract's
        reason, before anyone signs), then filled with its nonce, chain id and fees."""
        try:
            if tx.get("data"):
                self.txm.simulate(sender, tx, label)
            return self.txm.suggest(sender, tx)
        except TransactionReverted as err:
            raise WouldRevert(str(err)) from err
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def submit(self, call: SignedCall, label: str, after: TxRecord | None = None) -> TxRecord:
        """An owner's signed transaction, queued for the node (after `after`, if given)."""
        return self.txm.submit_signed(call, label, after)

    def function_of(self, call: SignedCall) -> tuple[str, str, tuple[Any, ...]] | None:
        """(contract, function, arguments) a signed transaction calls on our contracts."""
        for target in (self.token, self.escrow):
            if call.to != target.address or len(call.data) < 4:
                continue
            try:
                fn, args = target.decode_function_input(call.data)
            except ValueError:
                return None
            return ("EnergyToken" if target is self.token else "EnergyEscrow",
                    fn.fn_name, tuple(args.values()))
        return None

    def describe(self, call: SignedCall) -> str:
        """A label for a signed transaction, from what it does."""
        called = self.function_of(call)
        if called is not None:
            return LABELS.get(called[1], f"{called[0]}.{called[1]}")
        if not call.data:
            return f"Send Ether to {call.to}"
        return f"Contract call to {call.to}"

    def allowance(self, owner: str) -> int:
        """Tokens (Wh) the escrow may take from an owner when a deal opens."""
        return self.token.functions.allowance(owner, self.escrow.address).call()

    def transaction_by_hash(self, tx_hash: str) -> dict[str, Any] | None:
        """A transaction the node knows (a wallet sent it), or None."""
        try:
            return dict(self.w3.eth.get_transaction(tx_hash))
        except Exception:  # not known (yet), or not a hash the node accepts
            return None

    # -- writes by the operator and by meters ---------------------------------------------

    def bid_domain(self) -> tuple[int, str]:
        """(chain id, escrow address): the EIP-712 domain a buyer's bid is signed in."""
        return self.txm.chain_id(), self.escrow.address

    def open_deal_async(
        self, bid: dict[str, Any], signature: bytes, energy_wh: int, expires: int
    ) -> TxRecord:
        """Send the operator's openDeal for a winning signed bid; not awaited."""
        tx = self._tx(self.escrow, "openDeal", [bid_tuple(bid), signature, energy_wh, expires])
        return self._send(self.operator, tx, f"Open deal for listing {bid['listingId']}")

    def close_expired_async(self, deal_id: int) -> TxRecord:
        """The operator closes a deal past its expiry (anyone may); not awaited."""
        tx = self._tx(self.escrow, "closeDeal", [deal_id])
        return self._send(self.operator, tx, f"Close expired deal {deal_id}")

    def close_for_fault_async(self, deal_id: int, reason: int) -> TxRecord:
        """The operator ends a deal a fault stopped (EnergyEscrow.closeDealForFault)."""
        tx = self._tx(self.escrow, "closeDealForFault", [deal_id, reason])
        return self._send(self.operator, tx, f"Close deal {deal_id} for a fault")

    def mint_allowance(self, meter: str, margin_s: int = 0) -> tuple[int, int]:
        """(last minted reading, Wh mintable by a block mined now) of a producer meter.

        The next block's timestamp is estimated as the wall clock, or one second after the
        head when the chain runs ahead of it; margin_s seconds are taken off that estimate.
        """
        _, _, rated_w, last_wh, last_mint_at = self.token.functions.meterOf(meter).call()
        now = max(int(time.time()), self.w3.eth.get_block("latest")["timestamp"] + 1) - margin_s
        return last_wh, rated_w * max(0, now - last_mint_at) // 3600

    def deal_of_listing(self, listing_id: int) -> int:
        """The escrow's deal for a listing, 0 when none was opened."""
        return self.escrow.functions.dealOfListing(listing_id).call()

    def deal_id_from(self, record: TxRecord) -> int:
        """The escrow's deal id announced by a mined openDeal."""
        receipt = self.w3.eth.get_transaction_receipt(record.tx_hash)
        for event in self.escrow.events.DealOpened().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["dealId"])
        raise ChainActionFailed(f"{record.label}: no DealOpened event in the receipt")

    def report_delivery(self, meter: Signer, deal_id: int, cumulative_wh: int) -> TxRecord:
        """The buyer's meter reports cumulative delivered Wh (not awaited)."""
        tx = self._tx(self.escrow, "reportDelivery", [deal_id, cumulative_wh])
        return self._send(meter, tx, f"Delivery report {cumulative_wh} Wh on deal {deal_id}")

    def mint_reading(self, meter: Signer, cumulative_wh: int) -> TxRecord:
        """The producer's meter reports its cumulative Wh; the token mints the difference."""
        tx = self._tx(self.token, "mintReading", [cumulative_wh])
        return self._send(meter, tx, f"Mint from meter reading {cumulative_wh} Wh")

    def wait(self, record: TxRecord, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for a record's receipt, translating chain errors to market errors."""
        return self._wait(record, timeout)

    # -- events ----------------------------------------------------------------------------

    def log_poller(self, from_block: int = 0) -> LogPoller:
        """A poller over both contracts' logs."""
        return LogPoller(self.w3, [self.token.address, self.escrow.address], from_block)

    def decode(self, raw_log: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(event name, arguments) of a raw log of either contract, or None if unknown."""
        contract = self.token if raw_log["address"] == self.token.address else self.escrow
        topic = bytes(raw_log["topics"][0]) if raw_log["topics"] else b""
        for event in contract.all_events():
            if bytes.fromhex(event.topic.removeprefix("0x")) == topic:
                decoded = event().process_log(raw_log)
                return decoded["event"], dict(decoded["args"])
        return None

    # -- internals -------------------------------------------------------------------------

    def _deploy(self, name: str, *args: Any) -> str:
        # The artifact set the node's EVM runs (geth 1.13's clique chain stops at London).
        artifact = load_artifact(name, evm_version_of(self.w3.eth.get_block("latest")))
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args)._encode_data_in_transaction(*args)
        tx = {"data": data, "gas": GAS["deploy"]}
        receipt = self._wait(self.txm.send(self.operator, tx, f"Deploy {name}"))
        return receipt["contractAddress"]

    def _tx(self, contract: Any, fn: str, args: list[Any], value: int = 0) -> dict[str, Any]:
        return {
            "to": contract.address,
            "data": contract.encode_abi(fn, args=args),
            "value": value,
            "gas": GAS[fn],
        }

    def _send(self, account: Signer, tx: dict[str, Any], label: str) -> TxRecord:
        try:
            return self.txm.send(account, tx, label)
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def _operator_call(self, contract: Any, fn: str, args: list[Any], label: str) -> dict:
        return self._wait(self._send(self.operator, self._tx(contract, fn, args), label))

    def _wait(self, record: TxRecord, timeout: float = 30.0) -> dict[str, Any]:
        try:
            return self.txm.wait(record, timeout)
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    @staticmethod
    def _outputs(contract: Any, fn: str) -> list[dict[str, Any]]:
        for item in contract.abi:
            if item.get("type") == "function" and item["name"] == fn:
                outputs = item["outputs"]
                if len(outputs) == 1 and outputs[0]["type"] == "tuple":
                    return outputs[0]["components"]
                return outputs
        raise KeyError(fn)

    # -- reads for the books (a simulated day's reconciliation) ----------------------------

    def deal_count(self) -> int:
        """How many deals the escrow has opened (their ids run from 1)."""
        return self.escrow.functions.dealCount().call()

    def owed_to(self, address: str) -> int:
        """Wei the escrow owes an address because pushing a payment to it failed."""
        return self.escrow.functions.owedTo(address).call()
