"""A meter owner's consent to an enrollment: its EIP-712 terms and the check of a signature.

The token enrolls a meter for an owner only with the owner's signed MeterConsent (meter,
owner, kind, rated power, deadline) in its own EIP-712 domain, so the operator cannot make a
meter it controls anyone's consumer meter. The portal offers the terms; the owner's page signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.bindings import consent_typed_data, recover_typed
from marketplace.errors import InvalidInput, NotAllowed

CONSENT_TTL_S = 3600  # how long a consent the page signs may wait to be sent
SIGNATURE_BYTES = 65


def terms(request: Mapping[str, Any], deadline: int) -> dict[str, Any]:
    """The MeterConsent message of a stored consent request, valid until deadline."""
    return {"meter": request["meter"], "owner": request["owner"], "kind": int(request["kind"]),
            "ratedPowerW": int(request["rated_power_w"]), "deadline": int(deadline)}


def typed_data(chain_id: int, token: str, request: Mapping[str, Any], deadline: int) -> dict:
    """The full EIP-712 message the owner signs for a consent request."""
    return consent_typed_data(chain_id, token, terms(request, deadline))


def check_deadline(deadline: Any, now: float) -> int:
    """A consent's deadline: an integer still ahead, at most CONSENT_TTL_S away."""
    if isinstance(deadline, bool) or not isinstance(deadline, int):
        raise InvalidInput("deadline is the integer the consent's terms gave")
    if not now < deadline <= now + CONSENT_TTL_S:
        raise InvalidInput("that consent's deadline has passed (or is too far): sign it again")
    return deadline


def check_signature(full_message: dict[str, Any], signature: Any, owner: str) -> bytes:
    """The 65-byte signature, made by the owner's own key over these terms (else refused)."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except (AttributeError, ValueError) as err:
        raise InvalidInput("signature is 0x-hex") from err
    if len(raw) != SIGNATURE_BYTES:
        raise InvalidInput(f"a signature is {SIGNATURE_BYTES} bytes")
    signer = recover_typed(full_message, raw)
    if signer != owner:
        raise NotAllowed(f"the consent was signed by {signer}, not by the meter's owner {owner}")
    return raw
