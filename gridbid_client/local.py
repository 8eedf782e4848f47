"""The market's signed layer called in-process: a participant's key signs what the market
prepares, as the page and the HTTP client do (simulation agents, tests, benches)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from gridbid_client import checks
from gridbid_client.checks import tx_fields


def ether(wei: int) -> str:
    """Wei as the decimal ETH text the market's amount fields take."""
    return format(Decimal(wei) / 10**18, "f")


class LocalParty:
    """One participant acting on an in-process market (marketplace.Market and Wallets)."""

    def __init__(self, market: Any, wallets: Any, account: LocalAccount):
        self.market = market
        self.wallets = wallets
        self.account = account

    @property
    def address(self) -> str:
        """The participant's address."""
        return self.account.address

    def sign(self, prepared: dict[str, Any]) -> str:
        """The signed bytes (0x-hex) of a transaction the market prepared."""
        signed = self.account.sign_transaction(tx_fields(prepared["tx"]))
        return "0x" + bytes(signed.raw_transaction).hex()

    def submit(self, prepared: dict[str, Any]) -> Any:
        """Sign and queue a prepared transaction; its TxRecord (wait on it with the ledger)."""
        record = self.wallets.submit(self.address, self.sign(prepared))
        return self.market.ledger.txm.record(record["tx_hash"])

    def deposit(self, wei: int) -> Any:
        """Escrow Ether for bids."""
        return self.submit(self.wallets.prepare_deposit(self.address, ether(wei)))

    def request_withdrawal(self, wei: int) -> Any:
        """Ask to withdraw escrow Ether (it leaves after the escrow's notice)."""
        return self.submit(self.wallets.prepare_withdrawal(self.address, ether(wei)))

    def cancel_withdrawal(self) -> Any:
        """Call off a pending withdrawal request."""
        return self.submit(self.wallets.prepare_cancellation(self.address))

    def complete_withdrawal(self) -> Any:
        """Take out the Ether of a withdrawal whose notice is over."""
        return self.submit(self.wallets.prepare_completion(self.address))

    def send(self, to: str, wei: int) -> Any:
        """Send Ether."""
        return self.submit(self.wallets.prepare_send(self.address, to, ether(wei)))

    def list(self, wh: object, start_price: object, duration_s: object) -> dict[str, Any]:
        """List energy, signing the escrow's approval when the allowance falls short."""
        prepared = self.market.prepare_approval(self.address, wh)
        approval = self.sign(prepared) if prepared["needed"] else None
        return self.market.create_listing(self.address, wh, start_price, duration_s, approval)

    def bid(self, listing_id: object, price: object) -> dict[str, Any]:
        """Bid, signing the EIP-712 terms the market gives for this price (checked as the
        HTTP client checks them)."""
        terms = self.market.bid_terms(self.address, listing_id, price)
        typed = checks.bid_terms(terms, int(str(listing_id)), int(str(price)), self.address, None)
        signature = Account.sign_typed_data(self.account.key, full_message=typed).signature
        return self.market.place_bid(self.address, listing_id, terms["message"],
                                     "0x" + bytes(signature).hex())

    def close(self, deal_id: object) -> dict[str, Any]:
        """Close connection, signing the closeDeal the market prepares."""
        signed = self.sign(self.market.prepare_close(self.address, deal_id))
        return self.market.close_connection(self.address, deal_id, signed)

