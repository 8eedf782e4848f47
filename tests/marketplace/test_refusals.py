"""Refusals people read: every contract error as a sentence, amounts in ETH and Wh (issue 17)."""

from __future__ import annotations

import re

import pytest
from eth_abi import encode

from contracts.bindings import _errors, decode_revert
from marketplace import refusals, units

SAMPLE = {"address": "0x" + "ab" * 20, "uint256": 5 * 10**18, "uint64": 1_796_000_000,
          "uint32": 7, "uint8": 0, "bytes32": b"\x01" * 32, "string": "a, b"}
# Their uint256 is an id, a count or a code, not an amount: shown as the number it is.
NOT_AMOUNTS = {"DealNotOpen", "MeterBusy", "BidAlreadyUsed", "ECDSAInvalidSignatureLength",
               "InvalidAccountNonce", "Panic", "SafeCastOverflowedUintDowncast"}
TIMES = {"ERC2612ExpiredSignature": [1_796_000_000]}  # a uint256 that is a deadline
ERRORS = sorted({name: types for name, types in _errors().values()}.items())


def test_the_issue_example_reads_as_a_sentence():
    """Before: "InsufficientBalance(0, 5000000000000000000)" reached people as it is."""
    said = refusals.sentence("Withdraw from escrow", "InsufficientBalance(0, 5000000000000000000)")
    assert said == "Withdraw from escrow: you have 0 ETH free in the escrow; this needs 5 ETH"


@pytest.mark.parametrize(("name", "types"), ERRORS, ids=[name for name, _ in ERRORS])
def test_every_contract_error_is_a_sentence_without_raw_output(name, types):
    """Each custom error the three contracts (and their OpenZeppelin parts) can revert with,
    decoded from real revert data as the chain gives it, is words: no error name, no wei."""
    args = TIMES.get(name, [SAMPLE[t] for t in types])
    data = bytes.fromhex(_selector_of(name, types)) + encode(types, args)
    raw = decode_revert(None, data)
    assert raw and raw.startswith(f"{name}("), raw
    said = refusals.explain(raw)
    assert name not in said and "wei" not in said, said
    if name not in NOT_AMOUNTS:  # amounts and times as ETH, Wh or dates: no run of 10+ digits
        assert not re.search(r"[0-9]{10,}", re.sub("0x[0-9a-fA-F]{40}", "", said)), said


def _selector_of(name, types):
    from eth_utils import keccak

    return keccak(text=f"{name}({','.join(types)})")[:4].hex()


def test_a_record_error_is_shown_as_a_sentence_and_other_errors_as_they_are():
    assert refusals.readable("Withdraw from escrow reverted: NoWithdrawalPending(0)") == (
        "Withdraw from escrow: you have no withdrawal or move waiting in the lot auctions' "
        "escrow: ask for one first")
    assert refusals.readable("DealNotOpen(42)") == (
        "the deal (chain deal 42) does not exist or is closed already")
    assert refusals.readable("replaced by another transaction") == "replaced by another transaction"
    assert refusals.readable(None) is None


@pytest.mark.parametrize(("wei", "down", "up"), [
    (0, "0 ETH", "0 ETH"),
    (600_000_000_000_000, "0.0006 ETH", "0.0006 ETH"),  # the issue's "600000000000000 wei"
    (5 * 10**18, "5 ETH", "5 ETH"),
    (10**18 // 3, "0.333333 ETH", "0.333334 ETH"),
    (1, "0.000000000000000001 ETH", "0.000000000000000001 ETH"),  # never a non-zero shown as 0
    (1_234_567 * 10**18, "1,234,567 ETH", "1,234,567 ETH"),
])
def test_ether_is_shown_with_sensible_decimals_rounded_the_safe_way(wei, down, up):
    assert units.eth(wei) == down and units.eth(wei, "up") == up


def test_energy_shows_kwh_beside_wh_from_one_kwh_on():
    assert units.energy(30) == "30 Wh"
    assert units.energy(1500) == "1,500 Wh (1.5 kWh)"
    assert units.price(10**16) == "0.01 ETH/kWh"
