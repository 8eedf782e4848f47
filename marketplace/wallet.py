"""Wallet operations behind the wallet page: balances, escrow, Ether transfers, mining."""

from __future__ import annotations

import re
import threading
from typing import Any

from geth_private.backend import (
    BLOCK_PERIOD,
    MINE_ON_DEMAND,
    MINING_TOGGLE,
    SINGLE_NODE,
    ChainBackend,
)
from geth_private.errors import ChainError
from geth_private.watching import WatchRefused
from marketplace import readouts, refusals, rules, signed
from marketplace.contract_enums import MARKETS, EscrowMarket
from marketplace.errors import ChainActionFailed, InvalidInput, NotAllowed, NotFound
from marketplace.ledger import GAS, LABELS
from marketplace.machine_nodes import MachineNodes
from marketplace.market import Market
from marketplace.units import eth

LOTS = EscrowMarket.LOTS
KEPT_WALLETS = 10_000  # addresses whose balances are kept (Wallets._balances), oldest out first


def block_production(backend: ChainBackend) -> dict[str, str]:
    """Who produces this chain's blocks, and why (what a wallet says beside its block count)."""
    if backend.has(SINGLE_NODE):
        return {"by": "operator",
                "why": "this chain has one node (anvil/embedded/geth --dev): the operator "
                       "produces its blocks; participants' own sealing nodes come with geth"}
    return {"by": "participants",
            "why": "participants run sealing nodes of their own: each starts and stops only "
                   "its own node's sealing"}


class Wallets:
    """What one account holds and can do with its Ether, tokens and escrow balance."""

    def __init__(self, market: Market, nodes: MachineNodes | None = None):
        self.market = market
        self.ledger = market.ledger
        self.nodes = nodes  # the person's machines' own signer nodes, as their bridges report
        self._kept: dict[str, tuple[tuple[int, bytes], dict[str, Any]]] = {}  # _balances
        self._kept_lock = threading.Lock()

    def summary(self, address: str) -> dict[str, Any]:
        """Everything the wallet page shows for an address (wei as decimal strings)."""
        who = self.market.store.participant(address) or {}
        txm = self.ledger.txm
        held = self._balances(address)
        tokens = held["tokens_wh"]
        listed = self.market.store.listed_wh(address)
        return {
            "address": address,
            "name": who.get("name"),
            "role": who.get("role"),
            "eth_wei": held["eth_wei"],
            "tokens_wh": tokens,
            "listed_wh": listed,
            "unlisted_wh": tokens - listed,
            "escrow_free_wei": held["escrow_free_wei"],
            "escrow_locked_wei": held["escrow_locked_wei"],
            # What covers standing buy orders: the interval market's own escrow balance.
            "community_free_wei": held["community_free_wei"],
            "withdrawal": held["withdrawal"],
            "escrow_notice_s": held["escrow_notice_s"],
            "generation": self._generation(who.get("board_id"), who.get("role")),
            "pending": [_shown(r.public()) for r in txm.pending(address)],
            "recent": [_shown(r) for r in self.market.store.transactions(address, 10)],
            "mining": self.mining_state(),
            "nodes": self.nodes.of(address) if self.nodes is not None else [],
            # The interval market: what this interval earned or cost so far, when it settles.
            "interval": self.market.intervals.current_of(address),
        }

    def _balances(self, address: str) -> dict[str, Any]:
        """An address's balances on chain, read again only when the head block changed (one
        call instead of seven): the wallet pusher reads every open wallet each second, ~13 ms
        of CPU a wallet when each pass read them all, and they change only with a block.
        Keyed by the head's hash, so a chain that went back (another block under the same
        number) is read again."""
        key = self.ledger.head()
        with self._kept_lock:
            kept = self._kept.get(address)
        if kept is not None and kept[0] == key:
            return kept[1]
        ledger = self.ledger
        values = {
            "tokens_wh": ledger.token_balance(address),
            "eth_wei": str(ledger.eth_balance(address)),
            "escrow_free_wei": str(ledger.escrow_free(address)),
            "escrow_locked_wei": str(ledger.escrow_locked(address)),
            "community_free_wei": str(ledger.escrow_free(address, EscrowMarket.COMMUNITY)),
            "withdrawal": self._withdrawal(address),
            "escrow_notice_s": ledger.withdrawal_notice(),
        }
        with self._kept_lock:
            if len(self._kept) >= KEPT_WALLETS and address not in self._kept:
                self._kept.pop(next(iter(self._kept)))  # the oldest kept
            self._kept[address] = (key, values)
        return values

    def _withdrawal(self, address: str) -> dict[str, Any] | None:
        """The lots market's pending withdrawal or move (wei as a string), None when none."""
        pending = self.ledger.withdrawal_of(address)
        if not pending["available_at"]:
            return None
        to = EscrowMarket(pending["to_market"])
        return {"amount_wei": str(pending["amount"]), "available_at": pending["available_at"],
                "to_market": to.name.lower()}

    def check_send(self, address: str, to: object, amount_eth: object) -> dict[str, Any]:
        """What a send would do, validated (recipient, amount, balance) but not sent."""
        target = self._recipient(to)
        wei = rules.parse_ether(amount_eth, "amount")
        if target == address:
            raise InvalidInput("that is your own address")
        balance = self.ledger.eth_balance(address)
        _check_covers(balance, wei, self._fee("transfer"), f"send {eth(wei, 'up')}")
        known = self.market.store.participant(target)
        return {"to": target, "to_name": known["name"] if known else None,
                "amount_wei": str(wei), "balance_wei": str(balance)}

    # -- what the owner signs: the portal checks, suggests and queues -----------------------

    def prepare_deposit(
        self, address: str, amount_eth: object, market: object = None
    ) -> dict[str, Any]:
        """The escrow deposit the owner signs, so bids are covered."""
        wei = rules.parse_ether(amount_eth, "deposit")
        which = _market(market)
        _check_covers(self.ledger.eth_balance(address), wei, self._fee("deposit"),
                      f"deposit {eth(wei, 'up')}")
        return self._prepare(address, "EnergyEscrow", "deposit", [which], wei)

    def prepare_withdrawal(
        self, address: str, amount_eth: object, market: object = None
    ) -> dict[str, Any]:
        """A withdrawal request the owner signs: the Ether leaves after the escrow's notice."""
        wei = rules.parse_ether(amount_eth, "withdrawal")
        which = _market(market)
        free = self.ledger.escrow_free(address, which)
        if wei > free:
            raise InvalidInput(f"you have {eth(free)} free in the escrow ({_MARKET_NAMES[which]}); "
                               f"you cannot withdraw {eth(wei, 'up')}")
        return self._prepare(address, "EnergyEscrow", "requestWithdrawal", [which, wei])

    def prepare_cancellation(self, address: str, market: object = None) -> dict[str, Any]:
        """Call off a pending withdrawal: all of the escrow covers bids again."""
        return self._prepare(address, "EnergyEscrow", "requestWithdrawal", [_market(market), 0])

    def prepare_completion(self, address: str, market: object = None) -> dict[str, Any]:
        """The withdrawal's second step, once its notice is over."""
        return self._prepare(address, "EnergyEscrow", "completeWithdrawal", [_market(market)])

    def prepare_send(self, address: str, to: object, amount_eth: object) -> dict[str, Any]:
        """A plain Ether transfer the owner signs (to: an address or a participant's name)."""
        checked = self.check_send(address, to, amount_eth)
        tx = {"to": checked["to"], "value": int(checked["amount_wei"]), "gas": GAS["transfer"]}
        label = f"Send Ether to {checked['to_name'] or checked['to']}"
        return {**signed.prepared(self.ledger.prepare(address, tx, label), label), **checked}

    def submit(self, address: str, raw: object) -> dict[str, Any]:
        """An owner's signed transaction, queued: its record (hash computed here) at once."""
        call = signed.signed_call(raw)
        signed.check_signed_by(call, address, self.ledger.bid_domain()[0], "transaction")
        label = self.ledger.describe(call)
        known = self.market.store.participant(call.to) if call.to and not call.data else None
        if known is not None:
            label = f"Send Ether to {known['name']}"
        return self.market.submit_signed(call, label).as_accepted()

    def follow(self, address: str, tx_hash: object, label: object = None) -> dict[str, Any]:
        """A transaction the owner's wallet sent itself: followed like one sent from here."""
        if not isinstance(tx_hash, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash):
            raise InvalidInput("a transaction hash is 0x and 64 hex digits")
        text = str(label)[:80] if isinstance(label, str) and label.strip() else "Sent by wallet"
        try:
            return self.ledger.txm.watch(tx_hash.lower(), address, text).public()
        except WatchRefused as err:
            raise NotAllowed(str(err)) from err

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """One transaction's record, as the app knows it (or the store kept it)."""
        record = self.ledger.txm.record(tx_hash)
        if record is not None:
            return _shown(record.public())
        stored = self.market.store.transaction_record(tx_hash)
        if stored is None:
            raise NotFound(f"no transaction {tx_hash} is known here")
        return _shown(stored)

    def _fee(self, fn: str) -> int:
        """The most a transaction of fn may pay for gas, as suggested now."""
        return GAS[fn] * self.ledger.txm.max_fee_per_gas()

    def _prepare(self, address: str, contract: str, fn: str, args: list[Any],
                 value: int = 0) -> dict[str, Any]:
        tx = self.ledger.user_tx(contract, fn, args, value)
        label = LABELS[fn]
        return signed.prepared(self.ledger.prepare(address, tx, label), label)

    def mining_state(self) -> dict[str, Any]:
        """Whether blocks are produced, by whom and why, the head, the period, what can be done."""
        backend = self.ledger.txm.backend
        can_toggle = backend.has(MINING_TOGGLE)
        return {
            **block_production(backend),
            "on": backend.is_mining() if can_toggle else None,
            "can_toggle": can_toggle,
            "can_mine": backend.has(MINE_ON_DEMAND),
            "can_set_period": backend.has(BLOCK_PERIOD),
            "block_period": backend.block_period(),
            "block": self.ledger.block_number(),
            "pending": len(self.ledger.txm.pending()),
        }

    def set_block_period(self, seconds: object) -> dict[str, Any]:
        """A block every `seconds` while mining (0: one block per transaction)."""
        period = rules.parse_int(seconds, "block period (s)", 0, 3600)
        self._control(lambda backend: backend.set_block_period(period))
        return self.mining_state()

    def mine_block(self) -> dict[str, Any]:
        """Produce one block now (also while mining is stopped), with what was handed in."""
        self.ledger.txm.poll()  # owner-signed transactions still queued here go to the node first
        self._control(lambda backend: backend.mine(1))
        self.ledger.txm.poll()
        return self.mining_state()

    def _control(self, action: Any) -> None:
        try:
            action(self.ledger.txm.backend)
        except NotImplementedError as err:
            raise NotAllowed(str(err)) from err
        except ChainError as err:
            raise ChainActionFailed(str(err)) from err

    def set_mining(self, on: object) -> dict[str, Any]:
        """Start or stop block production."""
        if not isinstance(on, bool):
            raise InvalidInput("'on' must be true or false")
        self._control(lambda backend: self.ledger.txm.set_mining(on))
        return self.mining_state()

    def set_node_sealing(self, address: str, bridge_id: object, on: object) -> dict[str, Any]:
        """Start or stop the sealing of the person's own machine's node, through its bridge."""
        if self.nodes is None:
            raise NotAllowed("this portal reaches no machine's own node")
        return self.nodes.set_sealing(address, bridge_id, on)

    def _recipient(self, to: object) -> str:
        """An address as typed, or the address of a participant named so."""
        if isinstance(to, str) and not to.strip().lower().startswith("0x"):
            named = [p for p in self.market.store.participants() if p["name"] == to.strip()]
            if named:
                return named[0]["address"]
            raise InvalidInput(f"no participant is called {to.strip()!r}; give a name or an "
                               "address (0x and 40 hex digits)")
        return rules.parse_address(to, "recipient")

    def _generation(self, board_id: str | None, role: str | None) -> dict[str, Any] | None:
        if not board_id:
            return None
        reading = self.market.safe_read(board_id)
        if reading is None:
            return {"online": False}
        # A value the board got wrong shows as unknown (None), never an error for the wallet.
        shown = readouts.board(reading, board_id)
        power = shown["pv_w"] if role == "producer" and shown["pv_w"] is not None else (
            shown["power_w"])
        wh_in = readouts.number(getattr(reading, "wh_in", None), None, board_id, "wh_in")
        wh_out = readouts.number(getattr(reading, "wh_out", None), None, board_id, "wh_out")
        relays = shown["relays"]
        return {
            "online": True,
            "power_w": power,
            "energy_in_kwh": None if wh_in is None else round(wh_in / 1000, 4),
            "energy_out_kwh": None if wh_out is None else round(wh_out / 1000, 4),
            "soc": readouts.number(getattr(reading, "soc", None), None, board_id, "soc"),
            "relay_on": bool(relays and relays[0]),
        }


_MARKET_NAMES = {EscrowMarket.LOTS: "lot auctions", EscrowMarket.COMMUNITY: "community market"}


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """A transaction record as its owner reads it: a contract's refusal as a sentence."""
    if record.get("error"):
        return {**record, "error": refusals.readable(record["error"])}
    return record


def _check_covers(balance: int, wei: int, fee: int, what: str) -> None:
    """Refuse, as a sentence in ETH, a payment the sender's Ether balance does not cover with
    its fee (the node refuses a transaction its sender cannot pay gas for)."""
    if wei > balance:
        raise InvalidInput(f"you have {eth(balance)}; you cannot {what}")
    if wei + fee > balance:
        raise InvalidInput(f"you have {eth(balance)}; to {what} keep up to {eth(fee, 'up')} "
                           "for the transaction's fee (gas): send a little less")


def _market(value: object) -> int:
    """The escrow market an action names (the lots market when none is named)."""
    if value is None:
        return LOTS
    number = rules.parse_int(value, "market", 0, 255)
    if number not in MARKETS:
        known = ", ".join(f"{m.value} ({m.name.lower()})" for m in MARKETS)
        raise InvalidInput(f"market is one of {known}")
    return number
