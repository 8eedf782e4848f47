"""The ledger's EnergyToken side: meter registry, minting from signed readings, permits."""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from contracts.bindings import (
    PERMIT_TYPES,
    TOKEN_DOMAIN,
    consent_typed_data,
    digest,
    reading_tuple,
    typed_data,
)
from firmware_bridge.signing import ReadingDomain, SignedReading
from geth_private import TxRecord

# Gas of one mintReadings batch: a base, and a margin above what each reading was measured
# to use (a first mint to a new owner writes a fresh balance slot, the dearest case).
MINT_GAS_BASE = 60_000
MINT_GAS_PER_READING = 60_000
MAX_MINT_BATCH = 50  # readings per batch: keeps a batch far below a block's gas


class LedgerMeters:
    """EnergyToken calls of the Ledger (a mixin: it uses the Ledger's token, sending, reads)."""

    # Provided by the Ledger: its contracts, operator, TxManager and sending helpers
    # (_tx, _send, _operator_call, wait).
    token: Any
    escrow: Any
    operator: Any
    txm: Any
    user_tx: Any

    def reading_domain(self) -> ReadingDomain:
        """Where meter readings are signed: the chain's id and the token's address."""
        return ReadingDomain(self.txm.chain_id(), self.token.address)

    def head_timestamp(self) -> int:
        """The chain head's timestamp (unix seconds): what the contracts call block.timestamp."""
        return int(self.txm.w3.eth.get_block("latest")["timestamp"])

    def max_rated_power_w(self) -> int:
        """The highest rated power the token enrolls a meter with (fixed at deploy), in W."""
        return self.token.functions.maxRatedPowerW().call()

    def token_balance(self, address: str) -> int:
        """Energy tokens held, in Wh (token units)."""
        return self.token.functions.balanceOf(address).call()

    def total_supply(self) -> int:
        """Energy tokens in existence, in Wh."""
        return self.token.functions.totalSupply().call()

    def allowance(self, owner: str) -> int:
        """Tokens (Wh) the escrow may take from an owner when a deal opens."""
        return self.token.functions.allowance(owner, self.escrow.address).call()

    def meter_of(self, meter: str) -> dict[str, Any]:
        """A meter's registry entry (kind 0 when not enrolled) and its last minted reading."""
        owner, kind, rated, last_wh, last_at = self.token.functions.meterOf(meter).call()
        return {"owner": owner, "kind": kind, "rated_power_w": rated, "last_reading_wh": last_wh,
                "last_reading_at": last_at}

    def baseline_pending(self, meter: str) -> bool:
        """Whether the meter's next accepted reading only sets its counter (mints nothing):
        true from each enrollment (except a producer's new rating) until that reading."""
        return bool(self.token.functions.baselinePending(meter).call())

    def bound_owner_of(self, meter: str) -> str | None:
        """The owner a meter is bound to (enrolled, or disenrolled and not released), or None.

        Enrolling it for anyone else needs that owner's releaseMeter (release_meter_tx).
        """
        owner = self.token.functions.boundOwnerOf(meter).call()
        return None if int(owner, 16) == 0 else owner

    def release_meter_tx(self, meter: str) -> dict[str, Any]:
        """The releaseMeter call the meter's (former) owner signs (user_tx): it gives the
        meter up, so it may be enrolled for another owner."""
        return self.user_tx("EnergyToken", "releaseMeter", [to_checksum_address(meter)])

    def consent_used(self, consent: dict[str, Any]) -> bool:
        """Whether a MeterConsent (typed-data message fields) already enrolled its meter: each
        consent enrolls once (a retried enrollMeter of it reverts ConsentUsed)."""
        full = consent_typed_data(self.txm.chain_id(), self.token.address, consent)
        return bool(self.token.functions.consentUsed(digest(full)).call())

    def consent_typed_data(
        self, meter: str, owner: str, kind: int, rated_w: int, deadline: int
    ) -> dict[str, Any]:
        """The MeterConsent the owner signs to have `meter` enrolled as theirs with these terms."""
        consent = {"meter": to_checksum_address(meter), "owner": to_checksum_address(owner),
                   "kind": int(kind), "ratedPowerW": int(rated_w), "deadline": int(deadline)}
        return consent_typed_data(self.txm.chain_id(), self.token.address, consent)

    def enroll_meter_async(
        self, meter: str, owner: str, kind: int, rated_w: int, deadline: int, consent: bytes
    ) -> TxRecord:
        """The operator enrolls a meter with its owner's signed MeterConsent; not awaited."""
        args = [meter, owner, int(kind), int(rated_w), int(deadline), bytes(consent)]
        tx = self._tx(self.token, "enrollMeter", args)
        return self._send(self.operator, tx, f"Enroll meter {meter}")

    def enroll_meter(
        self, meter: str, owner: str, kind: int, rated_w: int, deadline: int, consent: bytes
    ) -> None:
        """Enroll a meter with its owner's consent and wait for the receipt (ChainActionFailed
        with the contract's reason when refused)."""
        self.wait(self.enroll_meter_async(meter, owner, kind, rated_w, deadline, consent))

    def disenroll_meter(self, meter: str) -> None:
        """Withdraw a meter's enrollment: its readings mint and settle no more (admin action)."""
        self._operator_call(self.token, "disenrollMeter", [meter], f"Disenroll meter {meter}")

    def mint_readings_async(self, readings: list[SignedReading]) -> TxRecord:
        """The operator sends one mintReadings batch of meter-signed readings; not awaited.

        Gas is fixed by the count (MINT_GAS_BASE + MINT_GAS_PER_READING each). The token
        skips (ReadingRefused) what cannot mint, so one bad reading never sinks the batch.
        """
        if not 1 <= len(readings) <= MAX_MINT_BATCH:
            raise ValueError(f"a mint batch holds 1 to {MAX_MINT_BATCH} readings, "
                             f"not {len(readings)}")
        structs = [reading_tuple(r.struct()) for r in readings]
        signatures = [bytes(r.signature) for r in readings]
        gas = MINT_GAS_BASE + MINT_GAS_PER_READING * len(readings)
        tx = self._tx(self.token, "mintReadings", [structs, signatures], gas=gas)
        label = f"Mint from {len(readings)} meter reading{'s' if len(readings) > 1 else ''}"
        return self._send(self.operator, tx, label)

    def permit_typed_data(self, owner: str, value: int, deadline: int) -> dict[str, Any]:
        """The ERC-2612 Permit an owner signs to let the escrow take `value` Wh of its tokens
        (the owner's permit nonce read from the token)."""
        owner = to_checksum_address(owner)
        message = {"owner": owner, "spender": self.escrow.address,
                   "value": int(value), "nonce": self.token.functions.nonces(owner).call(),
                   "deadline": int(deadline)}
        return typed_data(PERMIT_TYPES, TOKEN_DOMAIN, self.txm.chain_id(), self.token.address,
                          message)

    def submit_permit_async(
        self, owner: str, value: int, deadline: int, signature: bytes
    ) -> TxRecord:
        """The operator submits an owner's signed permit for the escrow; not awaited.

        It replaces the seller's own approve transaction, so a seller needs no Ether. Queued
        with its local hash (TxManager.queue): a listing's request never waits for the node.
        """
        signature = bytes(signature)
        if len(signature) != 65:
            raise ValueError(f"a permit signature has 65 bytes, not {len(signature)}")
        r, s, v = signature[:32], signature[32:64], signature[64]
        v = v + 27 if v < 27 else v
        args = [owner, self.escrow.address, int(value), int(deadline), v, r, s]
        tx = self._tx(self.token, "permit", args)
        return self._queue(self.operator, tx, f"Permit from {owner}")
