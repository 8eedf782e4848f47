"""The seller's consent: the signed EIP-712 Offer a listing is, and the token allowance
(an approve transaction or an ERC-2612 permit) that lets the escrow take the lot."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.bindings import offer_typed_data
from geth_private.signed import SignedCall
from marketplace import rules, signed
from marketplace.errors import InvalidInput, NotAllowed
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from marketplace.store import Store

SIGNING_GRACE_S = 60  # an offer listed this long after its terms may run that much shorter
PERMIT_VALID_S = 3600  # a permit the page signs is sent at once; an hour covers a slow chain


@dataclass(frozen=True)
class Backing:
    """What raises (or lowers) the escrow's allowance with a listing or a cancel: the seller's
    signed approve(escrow, amount), or a permit of amount the operator submits."""

    amount: int
    call: SignedCall | None = None
    permit: tuple[int, bytes] | None = None  # (deadline, signature)

    def submit(self, ledger: Ledger, seller: str, label: str) -> str:
        """Queue it for the chain (not awaited); the transaction's hash."""
        if self.call is not None:
            return ledger.submit(self.call, label).tx_hash
        deadline, signature = self.permit  # type: ignore[misc]
        return ledger.submit_permit_async(seller, self.amount, deadline, signature).tx_hash


def offer_deadline(auction_end: float, settings: Settings) -> int:
    """The last second a deal may open from an offer whose auction first ends at auction_end:
    after the latest soft-closed end, the winning bid's validity."""
    return int(auction_end) + settings.limits.soft_close_cap_s + settings.bid_validity_s


def auction_end(offer: Mapping[str, Any], settings: Settings) -> int:
    """When the auction of an offer first ends (the inverse of offer_deadline)."""
    return offer["deadline"] - settings.limits.soft_close_cap_s - settings.bid_validity_s


def new_offer(seller: str, meter: str, energy_wh: int, floor: int, deadline: int) -> dict:
    """The Offer a seller is asked to sign (a random 63-bit nonce makes each one unique)."""
    return {"seller": seller, "sellerMeter": meter, "energyWh": energy_wh,
            "floorPriceWeiPerKWh": floor, "deadline": deadline, "nonce": secrets.randbits(63)}


def seller_meter(who: Mapping[str, Any]) -> str:
    """The producer meter a seller's offers name (its seated meter), or NotAllowed."""
    if who["role"] != "producer":
        raise NotAllowed("only producers can list energy")
    if who["board_id"] is None or who["meter_address"] is None:
        raise NotAllowed("no meter board measures your production yet; the operator enrolls one")
    return who["meter_address"]


def check_offer(
    offer: Mapping[str, Any], seller: str, meter: str, settings: Settings, now: float,
    asked: Mapping[str, int | None],
) -> None:
    """Refuse an offer whose terms are not this listing's: seller, meter, energy and floor
    in bounds (and as asked, when the request names them), an auction of an allowed length."""
    limits = settings.limits
    wrong = [name for name, want in (("seller", seller), ("sellerMeter", meter),
                                     ("energyWh", asked.get("energy_wh")),
                                     ("floorPriceWeiPerKWh", asked.get("start_price")))
             if want is not None and offer[name] != want]
    if wrong:
        raise InvalidInput(f"the signed offer does not match this listing: {', '.join(wrong)}")
    rules.parse_int(offer["energyWh"], "energy (Wh)", limits.min_energy_wh, limits.max_energy_wh)
    rules.parse_int(offer["floorPriceWeiPerKWh"], "start bid (wei per kWh)", 1, rules.MAX_WEI)
    rules.check_cost(offer["floorPriceWeiPerKWh"], offer["energyWh"], "start bid")
    left = auction_end(offer, settings) - now
    # The auction's clock started when the terms were given: signing them takes a while.
    if not max(limits.min_duration_s - SIGNING_GRACE_S, 1) <= left <= limits.max_duration_s:
        raise InvalidInput(
            f"the offer's deadline leaves an auction of {left:.0f} s; it must last "
            f"{limits.min_duration_s} to {limits.max_duration_s} s: ask for new terms"
        )


def offer_terms_json(ledger: Ledger, offer: dict[str, Any]) -> dict[str, Any]:
    """The Offer's typed data as a page signs it."""
    return signed.page_terms(offer_typed_data(*ledger.offer_domain(), offer))


def parse_permit(payload: object, seller: str, ledger: Ledger) -> Backing:
    """A permit {value, deadline, signature} the seller signed for the escrow, checked
    against the token's current nonce, or InvalidInput/NotAllowed."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("give the permit as an object with value, deadline and signature")
    value = rules.parse_int(payload.get("value"), "permit value", 0, 2**256 - 1)
    deadline = rules.parse_int(payload.get("deadline"), "permit deadline", 0, 2**256 - 1)
    sig = signed.signature_bytes(payload.get("signature"))
    if deadline < ledger.head_timestamp():
        raise InvalidInput("the permit's deadline has passed: sign a new one")
    typed = ledger.permit_typed_data(seller, value, deadline)
    if signed.typed_signer(typed, sig, "permit") != seller:
        raise NotAllowed("the permit is not signed by your key for the token's current nonce")
    return Backing(value, permit=(deadline, sig))


def parse_approval(raw: object, seller: str, ledger: Ledger) -> Backing:
    """The seller's signed approve(escrow, n), checked, or InvalidInput/NotAllowed."""
    call = signed.signed_call(raw, "approval")
    signed.check_signed_by(call, seller, ledger.offer_domain()[0], "approval")
    called = ledger.function_of(call)
    if called is None or called[:2] != ("EnergyToken", "approve") \
            or called[2][0] != ledger.escrow.address:
        raise InvalidInput("the approval must be the token's approve(escrow, amount)")
    return Backing(int(called[2][1]), call=call)


def backing(approval: object, permit: object, seller: str, ledger: Ledger) -> Backing | None:
    """The approval or permit a request carries (None when neither); both at once is refused."""
    if approval is not None and permit is not None:
        raise InvalidInput("give either a signed approval or a permit, not both")
    if permit is not None:
        return parse_permit(permit, seller, ledger)
    return None if approval is None else parse_approval(approval, seller, ledger)


def permit_terms(ledger: Ledger, seller: str, value: int) -> dict[str, Any]:
    """The ERC-2612 permit (escrow may take value Wh) for a page to sign instead of approve."""
    deadline = ledger.head_timestamp() + PERMIT_VALID_S
    return signed.page_terms(ledger.permit_typed_data(seller, value, deadline))


def approval_settled(store: Store, ledger: Ledger, tx_hash: str | None) -> bool:
    """Whether a listing's approval (or permit) has left the queue: mined, or failed for good."""
    if not tx_hash:
        return True
    record = ledger.txm.record(tx_hash) or store.transaction_record(tx_hash) or {}
    status = record.status if hasattr(record, "status") else record.get("status")
    return status not in ("queued", "pending")
