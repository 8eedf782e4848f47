"""Wallet operations behind the wallet page: balances, escrow, Ether transfers, mining."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from geth_private.backend import BLOCK_PERIOD, MINE_ON_DEMAND, MINING_TOGGLE
from geth_private.errors import ChainError
from marketplace import rules
from marketplace.contract_enums import EscrowMarket
from marketplace.errors import ChainActionFailed, InvalidInput, NotAllowed
from marketplace.market import Market


class Wallets:
    """What one account holds and can do with its Ether, tokens and escrow balance."""

    def __init__(self, market: Market):
        self.market = market
        self.ledger = market.ledger

    def summary(self, address: str) -> dict[str, Any]:
        """Everything the wallet page shows for an address (wei as decimal strings)."""
        who = self.market.store.participant(address) or {}
        txm = self.ledger.txm
        tokens = self.ledger.token_balance(address)
        listed = self.market.store.listed_wh(address)
        return {
            "address": address,
            "name": who.get("name"),
            "role": who.get("role"),
            "eth_wei": str(self.ledger.eth_balance(address)),
            "tokens_wh": tokens,
            "listed_wh": listed,
            "unlisted_wh": tokens - listed,
            "escrow_free_wei": str(self.ledger.escrow_free(address)),
            "escrow_locked_wei": str(self.ledger.escrow_locked(address)),
            "withdrawal": self._withdrawal(address),
            "escrow_notice_s": self.ledger.withdrawal_notice(),
            "generation": self._generation(who.get("board_id"), who.get("role")),
            "pending": [r.public() for r in txm.pending(address)],
            "recent": self.market.store.transactions(address, 10),
            "mining": self.mining_state(),
        }

    def deposit(self, account: LocalAccount, amount_eth: object) -> dict[str, Any]:
        """Move Ether into the escrow so bids are covered."""
        wei = rules.parse_ether(amount_eth, "deposit")
        return self.ledger.deposit(account, wei).public()

    def withdraw(self, account: LocalAccount, amount_eth: object) -> dict[str, Any]:
        """Ask to take free escrow Ether back; it can be completed after the escrow's notice."""
        wei = rules.parse_ether(amount_eth, "withdrawal")
        return self.ledger.request_withdrawal(account, wei).public()

    def _withdrawal(self, address: str) -> dict[str, Any] | None:
        """The lots market's pending withdrawal or move (wei as a string), None when none."""
        pending = self.ledger.withdrawal_of(address)
        if not pending["available_at"]:
            return None
        to = EscrowMarket(pending["to_market"])
        return {"amount_wei": str(pending["amount"]), "available_at": pending["available_at"],
                "to_market": to.name.lower()}

    def check_send(self, address: str, to: object, amount_eth: object) -> dict[str, Any]:
        """What a send would do, validated (checksum, amount, balance) but not sent."""
        target = rules.parse_address(to, "recipient")
        wei = rules.parse_ether(amount_eth, "amount")
        if target == address:
            raise InvalidInput("that is your own address")
        balance = self.ledger.eth_balance(address)
        if wei > balance:
            raise InvalidInput(f"you have {balance} wei; you cannot send {wei}")
        known = self.market.store.participant(target)
        return {"to": target, "to_name": known["name"] if known else None,
                "amount_wei": str(wei), "balance_wei": str(balance)}

    def send_ether(self, account: LocalAccount, to: object, amount_eth: object) -> dict[str, Any]:
        """Send Ether to another address."""
        checked = self.check_send(account.address, to, amount_eth)
        return self.ledger.send_ether(account, checked["to"], int(checked["amount_wei"])).public()

    def mining_state(self) -> dict[str, Any]:
        """Whether blocks are produced, the head, the block period and what the node can do."""
        backend = self.ledger.txm.backend
        can_toggle = backend.has(MINING_TOGGLE)
        return {
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
        """Produce one block now (also while mining is stopped)."""
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

    def _generation(self, board_id: str | None, role: str | None) -> dict[str, Any] | None:
        if not board_id:
            return None
        reading = self.market.safe_read(board_id)
        if reading is None:
            return {"online": False}
        return {
            "online": True,
            "power_w": round(reading.pv_w if role == "producer" and reading.pv_w is not None
                             else reading.power_w, 1),
            "energy_in_kwh": round(reading.wh_in / 1000, 4),
            "energy_out_kwh": round(reading.wh_out / 1000, 4),
            "soc": reading.soc,
            "relay_on": bool(reading.relays and reading.relays[0]),
        }
