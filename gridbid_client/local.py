"""The market's signed layer called in-process: a participant's key signs what the market
prepares, as the page and the HTTP client do (simulation agents, tests, benches)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from gridbid_client import bids, checks
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

    def deposit(self, wei: int, market: int | None = None) -> Any:
        """Escrow Ether for bids (in the lots market, or the escrow market named)."""
        return self.submit(self.wallets.prepare_deposit(self.address, ether(wei), market))

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

    def offer(self, wh: object, start_price: object, duration_s: object) -> tuple[dict, str]:
        """(offer, 0x-signature): the Offer the market gives for a listing, checked as the
        HTTP client checks it, signed with this participant's key."""
        terms = self.market.offer_terms(self.address, wh, start_price, duration_s)
        meter = self.market.participant(self.address)["meter_address"]
        typed = checks.offer_terms(terms, int(str(wh)), int(str(start_price)), self.address,
                                   meter, None)
        return terms["message"], self._sign(typed)

    def list(self, wh: object, start_price: object, duration_s: object) -> dict[str, Any]:
        """List energy: the signed Offer, and the escrow's approval when the allowance falls
        short."""
        offer, signature = self.offer(wh, start_price, duration_s)
        prepared = self.market.prepare_approval(self.address, wh)
        approval = self.sign(prepared) if prepared["needed"] else None
        return self.market.create_listing(self.address, offer, signature, approval, None, wh,
                                          start_price)

    def bid(self, listing_id: object, price: object) -> dict[str, Any]:
        """Bid, building the EIP-712 bid from the listing's view as the page and the HTTP
        client do (against its published offer), signed with this participant's key."""
        listing = self.market.listing(int(str(listing_id)))
        meter = self.market.participant(self.address)["meter_address"]
        typed = bids.build_bid(listing, int(str(price)), self.address, meter,
                               bids.escrow_domain(*self.market.ledger.bid_domain()))
        return self.market.place_bid(self.address, listing_id, bids.as_json(typed["message"]),
                                     self._sign(typed))

    def cancel(self, listing_id: object) -> dict[str, Any]:
        """Cancel a listing, signing the approval that lowers the allowance by its lot."""
        prepared = self.market.prepare_cancel(self.address, listing_id)
        approval = self.sign(prepared) if prepared["needed"] else None
        return self.market.cancel_listing(self.address, listing_id, approval)

    def _sign(self, typed: dict[str, Any]) -> str:
        """A signature (0x-hex) of checked EIP-712 typed data with this participant's key."""
        return "0x" + bytes(Account.sign_typed_data(self.account.key,
                                                    full_message=typed).signature).hex()

    def set_mode(self, mode: str) -> dict[str, Any]:
        """Trade in the 'lots' or the 'intervals' market from the next boundary on."""
        return self.market.intervals.set_mode(self.address, mode)

    def set_order(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Set a standing order: the EIP-712 SellOrder/BuyOrder the market gives for the
        fields, checked to be this participant's own, signed with its key."""
        terms = self.market.intervals.order_terms(self.address, kind, fields)
        meter = self.market.participant(self.address)["meter_address"]
        typed = checks.order_terms(terms, kind, self.address, meter)
        return self.market.intervals.set_order(self.address, kind, terms["message"],
                                               self._sign(typed))

    def close(self, deal_id: object) -> dict[str, Any]:
        """Close connection, signing the closeDeal the market prepares."""
        signed = self.sign(self.market.prepare_close(self.address, deal_id))
        return self.market.close_connection(self.address, deal_id, signed)

