"""The ledger's IntervalSettlement side: standing orders' terms, batch settlement, its reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from contracts.bindings import (
    BUY,
    ORDER_OWNER,
    SELL,
    SETTLEMENT_DOMAIN,
    buy_order_tuple,
    contract,
    order_hash,
    order_typed_data,
    recover_typed,
    sell_order_tuple,
    sign_batch,
)
from geth_private import TxRecord
from geth_private.records import TxStatus
from marketplace.interval_minting import MeterMint
from marketplace.positions import Batch

if TYPE_CHECKING:
    from marketplace.ledger import Ledger

NAME = "IntervalSettlement"

# Fixed gas of a settle() batch, a margin above what bench/gas.py measured: a base (the
# transaction, the pool read, the batch event) and each position at its dearest (its order
# seen and its account written for the first time, a baseline reading, a fresh owed slot).
SETTLE_GAS_BASE = 80_000
SETTLE_GAS_PER_BUY = 150_000
SETTLE_GAS_PER_SELL = 190_000
SETTLE_GAS_PER_MINT = 60_000
MAX_BATCH_POSITIONS = 100  # keeps a batch far below a block's gas (100 × 190 k = 19 M)

GAS = {
    "grantRole": 120_000,
    "cancelSellOrder": 80_000,
    "cancelBuyOrder": 80_000,
}

# Defaults of the contract's fixed parameters (Ledger.deploy passes the market's settings).
ANYONE_AFTER_S = 3600  # block seconds after a batch's readings from which anyone may send it
INTERVAL_S = 900  # an interval in market (emulated) seconds
MAX_LINE_LOSS_BPS = 500  # the most line loss sellers bear (Settings.line_loss 0.05)

REASONS = {  # PositionRefused's reason, as IntervalSettlement numbers them
    1: "BAD_INTERVALS", 2: "NOT_AFTER_LAST", 3: "OVER_INTERVAL_CAP", 4: "PRICE",
    5: "OVER_DAILY_BUDGET", 6: "EXPIRED", 7: "BAD_ORDER_SIGNATURE", 8: "CANCELLED",
    9: "WRONG_METER", 10: "BAD_READING", 11: "READING_OUT_OF_TIME", 12: "NO_BASELINE",
    13: "OVER_METERED", 14: "INSUFFICIENT_FUNDS", 15: "POOL_SHORT", 16: "NO_TOKENS",
}
SIDES = {1: BUY, 2: SELL}


def settle_gas(batch: Batch) -> int:
    """The fixed gas limit of a batch: base plus each position and mint reading."""
    return (SETTLE_GAS_BASE + SETTLE_GAS_PER_BUY * len(batch.buys)
            + SETTLE_GAS_PER_SELL * len(batch.sells) + SETTLE_GAS_PER_MINT * len(batch.mints))


class IntervalLedger:
    """IntervalSettlement as the market uses it, over the Ledger's TxManager and operator."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.contract: Any = None

    # -- setup -----------------------------------------------------------------------------

    def deploy(self, anyone_after_s: int, interval_s: int, interval_wall_s: int,
               max_line_loss_bps: int = MAX_LINE_LOSS_BPS) -> str:
        """Deploy IntervalSettlement from the operator and grant it the token's and the
        escrow's SETTLEMENT_ROLE (the Ledger's contracts deployed first).

        max_line_loss_bps: the most line loss sellers bear, in basis points (a sell may be
        paid down to floor × Wh × (1 − loss))."""
        for name, value, top in (("anyone-after window", anyone_after_s, 2**64),
                                 ("interval", interval_s, 2**32),
                                 ("interval in block seconds", interval_wall_s, 2**32)):
            if not 0 < value < top:
                raise ValueError(f"the {name} must be positive and below {top}, got {value}")
        if not 0 <= max_line_loss_bps < 10_000:
            raise ValueError(f"the maximum line loss is 0 to 9,999 basis points, got "
                             f"{max_line_loss_bps}")
        ledger = self.ledger
        address = ledger._deploy(NAME, ledger.token.address, ledger.escrow.address,
                                 ledger.operator.address, anyone_after_s, interval_s,
                                 interval_wall_s, max_line_loss_bps)
        self.attach(address)
        for target, label in ((ledger.token, "Let the settlement mint and burn"),
                              (ledger.escrow, "Let the settlement charge and credit")):
            role = target.functions.SETTLEMENT_ROLE().call()
            ledger._operator_call(target, "grantRole", [role, address], label)
        return address

    def attach(self, address: str) -> None:
        """Use an IntervalSettlement already deployed at this address."""
        self.contract = contract(self.ledger.w3, NAME, address)

    def deployed_at(self, address: str | None) -> bool:
        """Whether an IntervalSettlement of this build, settling in the Ledger's token and
        escrow, runs at this address."""
        if not address:
            return False
        w3 = self.ledger.w3
        if w3.eth.get_code(Web3.to_checksum_address(address)) in (b"", None):
            return False
        try:
            token, escrow, *_ = contract(w3, NAME, address).functions.parameters().call()
        except Exception:  # another contract (or build) at that address
            return False
        return (token, escrow) == (self.ledger.token.address, self.ledger.escrow.address)

    @property
    def address(self) -> str:
        """Where the settlement contract is."""
        return self.contract.address

    def parameters(self) -> dict[str, int]:
        """The contract's fixed anyone-after window, interval lengths and line loss bound."""
        _, _, anyone_after, interval_s, wall_s, loss = self.contract.functions.parameters().call()
        return {"anyone_after_s": anyone_after, "interval_s": interval_s,
                "interval_wall_s": wall_s, "max_line_loss_bps": loss}

    # -- orders: what owners sign ---------------------------------------------------------

    def domain(self) -> dict[str, Any]:
        """The EIP-712 domain standing orders and batches are signed in."""
        return {"name": SETTLEMENT_DOMAIN[0], "version": SETTLEMENT_DOMAIN[1],
                "chainId": self.ledger.txm.chain_id(), "verifyingContract": self.address}

    def sell_order_typed(self, order: dict[str, Any]) -> dict[str, Any]:
        """The full EIP-712 message a seller signs for its standing order."""
        return order_typed_data(SELL, order, self.domain())

    def buy_order_typed(self, order: dict[str, Any]) -> dict[str, Any]:
        """The full EIP-712 message a buyer signs for its standing order."""
        return order_typed_data(BUY, order, self.domain())

    def order_hash(self, kind: str, order: dict[str, Any]) -> bytes:
        """A standing order's EIP-712 digest (what cancelled() and orderState take)."""
        return order_hash(kind, order, self.domain())

    def order_signer(self, kind: str, order: dict[str, Any], sig: bytes) -> str | None:
        """The address that signed an order (None when the signature cannot be read); the
        order is valid when it is the order's seller or buyer."""
        return recover_typed(order_typed_data(kind, order, self.domain()), bytes(sig))

    def cancel_order_tx(self, kind: str, order: dict[str, Any]) -> dict[str, Any]:
        """The cancel call the order's owner signs (Ledger.prepare, then its own key)."""
        if kind not in ORDER_OWNER:
            raise ValueError(f"an order is 'sell' or 'buy', not {kind!r}")
        fn, args = (("cancelSellOrder", [sell_order_tuple(order)]) if kind == SELL
                    else ("cancelBuyOrder", [buy_order_tuple(order)]))
        return self.ledger._tx(self.contract, fn, args, gas=GAS[fn])

    def cancelled(self, digest: bytes, owner: str | None = None) -> bool:
        """Whether an order (by its hash) was cancelled (by `owner`, when given)."""
        found, state = self.contract.functions.orderState(bytes(digest)).call()
        return state == 2 and (owner is None or found == to_checksum_address(owner))

    def cancelled_at(self, digest: bytes) -> int:
        """The block time its owner cancelled an order (0: not cancelled); positions whose
        closing reading is at most two intervals later still settle."""
        return self.contract.functions.cancelledAt(bytes(digest)).call()

    def order_state(self, digest: bytes) -> dict[str, Any]:
        """An order's state on chain: its owner once seen, and unseen|verified|cancelled."""
        owner, state = self.contract.functions.orderState(bytes(digest)).call()
        return {"owner": owner, "state": ("unseen", "verified", "cancelled")[state]}

    # -- settling --------------------------------------------------------------------------

    def sign(self, batch: Batch) -> Batch:
        """The batch with the operator's Batch signature, for anyone to send after the window."""
        signature = sign_batch(self.ledger.operator, batch.through_interval,
                               batch.positions_hash(), self.domain())
        return batch.with_signature(signature)

    def settle_async(self, batch: Batch, sender: Any = None) -> TxRecord:
        """Send a batch (by the operator unless `sender` is given); not awaited. Fixed gas:
        settle_gas(batch). Refused positions are skipped by the contract, never the batch."""
        count = len(batch.buys) + len(batch.sells)
        if not 1 <= count + len(batch.mints) or count > MAX_BATCH_POSITIONS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_POSITIONS} positions, not {count}")
        tx = self.ledger._tx(self.contract, "settle", [batch.to_tuple()], gas=settle_gas(batch))
        label = (f"Settle {len(batch.buys)} buy and {len(batch.sells)} sell position"
                 f"{'s' if count != 1 else ''} through interval {batch.through_interval}")
        return self.ledger._send(sender or self.ledger.operator, tx, label)

    # -- reads -----------------------------------------------------------------------------

    def position_of(self, account: str, meter: str) -> dict[str, int]:
        """An account's settled state on its meter: last interval, last reading's time and
        counter (whIn of a buyer's meter, whOut of a seller's), and a buyer's day spend."""
        last, at, wh, day, spent = self.contract.functions.positionOf(
            to_checksum_address(account), to_checksum_address(meter)).call()
        return {"last_interval": last, "last_at": at, "last_wh": wh, "day": day,
                "day_spent_wei": spent}

    def meter_mint(self, meter: str) -> MeterMint:
        """A producer meter's mint state on the token: counter, time, rating, block-time
        allowance now and whether its baseline is pending (what a closing reading may mint)."""
        token = self.ledger.token.functions
        meter = to_checksum_address(meter)
        _, _, rated, last_wh, last_at = token.meterOf(meter).call()
        return MeterMint(int(last_wh), int(last_at), int(rated),
                         int(token.mintAllowanceWh(meter).call()),
                         bool(token.baselinePending(meter).call()))

    def pool_wei(self) -> int:
        """Wei charged from buyers and not yet credited to sellers (the escrow holds it)."""
        return self.contract.functions.poolWei().call()

    def batch_outcome(self, tx_hash: str) -> dict[str, Any] | None:
        """A sent settle batch: None while pending; else its status, the (account, side)
        pairs settled and the (account, side) pairs refused with their reasons' names."""
        record = self.ledger.txm.record(tx_hash)
        if record is not None and record.status in (TxStatus.QUEUED, TxStatus.PENDING):
            return None
        if record is not None and record.status == TxStatus.FAILED:
            return {"status": "failed", "error": str(record.error)[:500]}
        try:
            receipt = self.ledger.w3.eth.get_transaction_receipt(tx_hash)
        except Exception:  # not mined yet (a record this worker did not send, after a restart)
            return None
        if receipt["status"] != 1:
            return {"status": "failed", "error": "the batch reverted"}
        events = self.contract.events
        settled = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?"))
                   for e in events.PositionSettled().process_receipt(receipt, errors=DISCARD)}
        refused = {(e["args"]["account"], SIDES.get(int(e["args"]["side"]), "?")):
                   REASONS.get(e["args"]["reason"], e["args"]["reason"])
                   for e in events.PositionRefused().process_receipt(receipt, errors=DISCARD)}
        return {"status": "mined", "settled": settled, "refused": refused,
                "gas_used": int(receipt["gasUsed"])}

    def events(self, from_block: int, to_block: int | str = "latest") -> list[dict[str, Any]]:
        """The contract's events in a block range, decoded, oldest first: {event, args,
        block, tx_hash, log_index}; PositionRefused carries its reason's name too."""
        logs = self.ledger.w3.eth.get_logs({"fromBlock": from_block, "toBlock": to_block,
                                            "address": self.address})
        found = []
        for raw in logs:
            decoded = self._decode(raw)
            if decoded is None:
                continue
            name, args = decoded
            if "side" in args:
                args["side_name"] = SIDES.get(args["side"])
            if name == "PositionRefused":
                args["reason_name"] = REASONS.get(args["reason"], str(args["reason"]))
            found.append({"event": name, "args": args, "block": raw["blockNumber"],
                          "tx_hash": "0x" + bytes(raw["transactionHash"]).hex().removeprefix("0x"),
                          "log_index": raw["logIndex"]})
        return found

    def cancels(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """OrderCancelled events in a block range, oldest first: {hash (0x hex), owner, block}
        (one eth_getLogs filtered by the contract and the event's topic)."""
        event = self.contract.events.OrderCancelled()
        topic = "0x" + event.topic.removeprefix("0x")
        logs = self.ledger.w3.eth.get_logs({"fromBlock": from_block, "toBlock": to_block,
                                            "address": self.address, "topics": [topic]})
        found = []
        for raw in logs:
            args = event.process_log(raw)["args"]
            found.append({"hash": "0x" + bytes(args["order"]).hex(),
                          "owner": to_checksum_address(args["owner"]),
                          "block": raw["blockNumber"]})
        return found

    def _decode(self, raw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        topic = bytes(raw["topics"][0]) if raw["topics"] else b""
        for event in self.contract.all_events():
            if bytes.fromhex(event.topic.removeprefix("0x")) == topic:
                decoded = event().process_log(raw)
                return decoded["event"], dict(decoded["args"])
        return None
