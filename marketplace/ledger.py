"""The market's view of the chain: the two contracts, reads, and signed writes with fixed gas."""

from __future__ import annotations

import logging
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from contracts.bindings import (
    bid_tuple,
    decode_revert,
    offer_hash,
    offer_tuple,
    reading_tuple,
)
from firmware_bridge.signing import SignedReading
from geth_private import LogPoller, Signer, TxManager, TxRecord
from geth_private.errors import ChainError, TransactionRejected, TransactionReverted
from geth_private.signed import SignedCall
from marketplace import refusals
from marketplace.contract_enums import EscrowMarket, MeterKind
from marketplace.errors import ChainActionFailed, ChainRefused, InvalidInput, WouldRevert
from marketplace.ledger_intervals import (
    IntervalLedger,
)
from marketplace.ledger_meters import MINT_GAS_BASE, LedgerMeters
from marketplace.ledger_setup import DEPLOY_GAS, LedgerSetup

log = logging.getLogger(__name__)

PRODUCER, CONSUMER = MeterKind.PRODUCER, MeterKind.CONSUMER
LOTS = EscrowMarket.LOTS

# Fixed gas limits, a margin above what each call was measured to use (estimation costs
# ~45 ms a call on the embedded chain, and a delivery step is a hot path).
GAS = {
    "deploy": DEPLOY_GAS,
    "grantRole": 120_000,
    "enrollMeter": 160_000,
    "disenrollMeter": 80_000,
    "releaseMeter": 80_000,
    "mintReadings": MINT_GAS_BASE,  # plus MINT_GAS_PER_READING a reading (ledger_meters)
    "approve": 80_000,
    "permit": 120_000,
    "deposit": 80_000,
    "requestWithdrawal": 80_000,
    "requestMove": 80_000,
    "completeWithdrawal": 100_000,  # a payout to a contract wallet runs its receive()
    "openDeal": 450_000,
    "cancelOffer": 80_000,
    "reportDelivery": 250_000,
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
    "cancelOffer": "Cancel offer",
    "releaseMeter": "Release meter",
    "closeDeal": "Close connection",
    "withdrawOwed": "Withdraw payments owed",
    "cancelSellOrder": "Cancel standing sell order",
    "cancelBuyOrder": "Cancel standing buy order",
}


# The escrow views a bid reads each block, (4-byte selector, output types) from the ABI.
_VIEWS = {name: (bytes(Web3.keccak(text=f"{name}(address,uint8)")[:4]), outputs)
          for name, outputs in (("freeOf", ["uint256"]),
                                ("withdrawalOf", ["uint256", "uint64", "uint8"]))}


class Ledger(LedgerSetup, LedgerMeters):
    """EnergyToken and EnergyEscrow as the market uses them, over one TxManager."""

    def __init__(self, txm: TxManager, operator: LocalAccount):
        self.txm = txm
        self.operator = operator
        self.token: Any = None
        self.escrow: Any = None
        self.intervals = IntervalLedger(self)  # the community market's settlement contract
        # (view, address, market) -> (block, value): escrow reads kept for the block read at
        self._cached: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        txm.decode_revert = lambda data: decode_revert(self.w3, data)

    @property
    def w3(self) -> Web3:
        """The connected Web3 instance."""
        return self.txm.w3

    def fund(self, address: str, wei: int) -> None:
        """Give an account Ether from the chain's faucet (demo accounts; meters need none)."""
        faucet = self.txm.backend.faucet()
        tx = {"to": address, "value": wei, "gas": GAS["transfer"]}
        self._wait(self.txm.send(faucet, tx, f"Fund {address}"))

    # -- reads -----------------------------------------------------------------------------

    def eth_balance(self, address: str) -> int:
        """Ether held by an address, in wei."""
        return self.w3.eth.get_balance(address)

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
        # Kept under the head's number and hash: a chain that went back (anvil from an older
        # dump) has another block under a number read before, and its own values there.
        at = self.head()
        block = at[0]
        key = (view, address, int(market))
        known = self._cached.get(key)
        if known is not None and known[0] == at:
            return known[1]
        value = self._escrow_view(view, address, int(market), block)
        self._cached[key] = (at, value)
        return value

    def _escrow_view(self, view: str, address: str, market: int, block: int) -> Any:
        """An escrow view(address, uint8 market) at a block, as ContractFunction.call gives it
        (one output as itself, several as a sequence), encoded here: web3's contract call
        looks the ABI up and validates it again on every call, a quarter of each bid's read."""
        selector, outputs = _VIEWS[view]
        data = selector + abi_encode(["address", "uint8"], [address, market])
        raw = self.w3.eth.call({"to": self.escrow.address, "data": data}, block)
        values = abi_decode(outputs, bytes(raw))
        return values[0] if len(values) == 1 else list(values)

    def escrow_funds_at(self, address: str, block: int) -> tuple[int, int]:
        """(free balance, pending withdrawal amount) of a buyer in the lots market at a block,
        in wei: what a bid's check needs (marketplace.funds keeps it)."""
        free = self._escrow_view("freeOf", address, int(LOTS), block)
        return free, self._escrow_view("withdrawalOf", address, int(LOTS), block)[0]

    def tokens_at(self, address: str, block: int) -> tuple[int, int]:
        """(energy tokens held, the escrow's allowance) of an address at a block, in Wh."""
        balance = self.token.functions.balanceOf(address).call(block_identifier=block)
        allowance = self.token.functions.allowance(address, self.escrow.address).call(
            block_identifier=block)
        return balance, allowance

    def escrow_locked(self, address: str) -> int:
        """A buyer's escrow balance locked by open deals, in wei."""
        return self.escrow.functions.lockedOf(address).call()

    def chain_deal(self, deal_id: int, block: int | None = None) -> dict[str, Any]:
        """The escrow's record of a deal (at a block; None: the latest)."""
        fields = self.escrow.functions.getDeal(deal_id).call(block_identifier=block)
        names = [o["name"] for o in self._outputs(self.escrow, "getDeal")]
        return dict(zip(names, fields, strict=True))

    def chain_id(self) -> int:
        """The chain's id (EIP-155), asked once: a sign-in message needs no node round trip."""
        return self.txm.chain_id()

    def block_number(self) -> int:
        """The chain head's number."""
        return self.w3.eth.block_number

    def head(self) -> tuple[int, bytes]:
        """The chain head's number and hash: what values read at `latest` are kept under (a
        chain that went back has another block under a number read before)."""
        block = self.w3.eth.get_block("latest")
        return int(block["number"]), bytes(block["hash"])

    # -- what users sign: built and checked here, signed by their owner, queued -------------

    def user_tx(self, contract: str, fn: str, args: list[Any], value: int = 0) -> dict[str, Any]:
        """The call an owner signs: one of the contracts' functions, with its fixed gas."""
        target = self._contracts()[contract]
        return self._tx(target, fn, args, value)

    def _contracts(self) -> dict[str, Any]:
        found = {"EnergyToken": self.token, "EnergyEscrow": self.escrow}
        if self.intervals.contract is not None:
            found["IntervalSettlement"] = self.intervals.contract
        return found

    def prepare(self, sender: str, tx: dict[str, Any], label: str) -> dict[str, Any]:
        """tx simulated from the sender (a revert is a WouldRevert, 409, with the contract's
        reason, before anyone signs), then filled with its nonce, chain id and fees."""
        try:
            if tx.get("data"):
                self.txm.simulate(sender, tx, label)
            return self.txm.suggest(sender, tx)
        except TransactionReverted as err:
            raise WouldRevert(refusals.sentence(err.label, err.reason), reason=err.reason) from err
        except TransactionRejected as err:
            # Before anything is signed: the node turned the sender's own transaction down.
            raise InvalidInput(f"the chain refuses this transaction: {err}") from err
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def submit(self, call: SignedCall, label: str, after: TxRecord | None = None) -> TxRecord:
        """An owner's signed transaction, queued for the node (after `after`, if given)."""
        return self.txm.submit_signed(call, label, after)

    def function_of(self, call: SignedCall) -> tuple[str, str, tuple[Any, ...]] | None:
        """(contract, function, arguments) a signed transaction calls on our contracts."""
        for name, target in self._contracts().items():
            if call.to != target.address or len(call.data) < 4:
                continue
            try:
                fn, args = target.decode_function_input(call.data)
            except ValueError:
                return None
            return (name, fn.fn_name, tuple(args.values()))
        return None

    def describe(self, call: SignedCall) -> str:
        """A label for a signed transaction, from what it does."""
        called = self.function_of(call)
        if called is not None:
            return LABELS.get(called[1], f"{called[0]}.{called[1]}")
        if not call.data:
            return f"Send Ether to {call.to}"
        return f"Contract call to {call.to}"

    def transaction_by_hash(self, tx_hash: str) -> dict[str, Any] | None:
        """A transaction the node knows (a wallet sent it), or None."""
        try:
            return dict(self.w3.eth.get_transaction(tx_hash))
        except Exception:  # not known (yet), or not a hash the node accepts
            return None

    # -- writes by the operator and by meters ---------------------------------------------

    def bid_domain(self) -> tuple[int, str]:
        """(chain id, escrow address): the EIP-712 domain offers and bids are signed in."""
        return self.txm.chain_id(), self.escrow.address

    offer_domain = bid_domain

    def open_deal_async(
        self, offer: dict[str, Any], offer_sig: bytes, bid: dict[str, Any], bid_sig: bytes,
        energy_wh: int,
    ) -> TxRecord:
        """Send the operator's openDeal for a seller's signed offer and the winning signed
        bid on it; not awaited. The deal expires the escrow's dealDuration after it opens."""
        args = [offer_tuple(offer), bytes(offer_sig), bid_tuple(bid), bytes(bid_sig), energy_wh]
        tx = self._tx(self.escrow, "openDeal", args)
        digest = offer_hash(*self.offer_domain(), offer)
        return self._send(self.operator, tx, f"Open deal for offer 0x{digest.hex()[:12]}")

    def cancel_offer_tx(self, offer: dict[str, Any]) -> dict[str, Any]:
        """The cancelOffer call the offer's seller signs (user_tx): no deal opens from it after."""
        return self.user_tx("EnergyEscrow", "cancelOffer", [offer_tuple(offer)])

    def deal_of_offer(self, offer_hash: bytes) -> int:
        """The escrow's deal for an offer (by its EIP-712 hash), 0 when none was opened."""
        return self.escrow.functions.dealOfOffer(bytes(offer_hash)).call()

    def offer_used(self, offer_hash: bytes) -> bool:
        """Whether an offer opened a deal or its seller cancelled it."""
        return self.escrow.functions.offerUsed(bytes(offer_hash)).call()

    def deal_duration(self) -> int:
        """Seconds from a deal's opening to its expiry (fixed at deploy)."""
        return self.escrow.functions.dealDuration().call()

    def close_expired_async(self, deal_id: int) -> TxRecord:
        """The operator closes a deal past its expiry (anyone may); not awaited."""
        tx = self._tx(self.escrow, "closeDeal", [deal_id])
        return self._send(self.operator, tx, f"Close expired deal {deal_id}")

    def close_for_fault_async(self, deal_id: int, reason: int) -> TxRecord:
        """The operator ends a deal a fault stopped (EnergyEscrow.closeDealForFault)."""
        tx = self._tx(self.escrow, "closeDealForFault", [deal_id, reason])
        return self._send(self.operator, tx, f"Close deal {deal_id} for a fault")

    def deal_id_from(self, record: TxRecord) -> int:
        """The escrow's deal id announced by a mined openDeal."""
        receipt = self.w3.eth.get_transaction_receipt(record.tx_hash)
        for event in self.escrow.events.DealOpened().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["dealId"])
        raise ChainActionFailed(f"{record.label}: no DealOpened event in the receipt")

    def report_delivery_async(
        self, deal_id: int, seller: SignedReading, buyer: SignedReading
    ) -> TxRecord:
        """The operator reports a deal's delivery with both meters' signed readings (the first
        report fixes the baselines); not awaited. Meters need no Ether."""
        args = [deal_id, reading_tuple(seller.struct()), bytes(seller.signature),
                reading_tuple(buyer.struct()), bytes(buyer.signature)]
        tx = self._tx(self.escrow, "reportDelivery", args)
        label = f"Delivery report on deal {deal_id}: buyer meter {buyer.wh_in} Wh"
        return self._send(self.operator, tx, label)

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

    def _tx(
        self, contract: Any, fn: str, args: list[Any], value: int = 0, gas: int | None = None
    ) -> dict[str, Any]:
        return {
            "to": contract.address,
            "data": contract.encode_abi(fn, args=args),
            "value": value,
            "gas": gas if gas is not None else GAS[fn],
        }

    def _send(self, account: Signer, tx: dict[str, Any], label: str) -> TxRecord:
        try:
            return self.txm.send(account, tx, label)
        except TransactionReverted as err:
            raise ChainRefused(refusals.sentence(err.label, err.reason), err.reason) from err
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def _queue(self, account: Signer, tx: dict[str, Any], label: str) -> TxRecord:
        """Signed here and queued for the transaction loop: the hash at once, no node asked."""
        try:
            return self.txm.queue(account, tx, label)
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def _operator_call(self, contract: Any, fn: str, args: list[Any], label: str) -> dict:
        return self._wait(self._send(self.operator, self._tx(contract, fn, args), label))

    def _wait(self, record: TxRecord, timeout: float = 30.0) -> dict[str, Any]:
        try:
            return self.txm.wait(record, timeout)
        except TransactionReverted as err:  # the contract said no: a refusal, not node trouble
            raise ChainRefused(refusals.sentence(err.label, err.reason), err.reason) from err
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
