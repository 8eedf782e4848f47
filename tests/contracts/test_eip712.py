"""contracts.eip712's direct hashing gives eth-account's EIP-712 signable, and refuses alike."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from contracts.bindings import (
    bid_typed_data,
    consent_typed_data,
    offer_typed_data,
    reading_typed_data,
    recover_typed,
    sign_bid,
)
from contracts.eip712 import checksummed, signable
from marketplace import signed
from marketplace.errors import InvalidInput

ESCROW = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TOKEN = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def _address(rng: random.Random) -> str:
    return checksummed("0x" + rng.randbytes(20).hex())


def _messages(rng: random.Random) -> list[dict]:
    """One full message of each struct the market signs, with random values."""
    chain = rng.choice([1, 31337, 2**64 + 7])
    bid = {"offer": rng.randbytes(32), "buyer": _address(rng), "buyerMeter": _address(rng),
           "priceWeiPerKWh": rng.randrange(2**128), "maxWh": rng.randrange(1, 10**6),
           "nonce": rng.randrange(2**63), "expiry": rng.randrange(2**64)}
    offer = {"seller": _address(rng), "sellerMeter": _address(rng).lower(),
             "energyWh": rng.randrange(1, 10**6), "floorPriceWeiPerKWh": rng.randrange(2**256),
             "deadline": rng.randrange(2**64), "nonce": rng.randrange(2**256)}
    reading = {"meter": _address(rng), "whIn": rng.randrange(2**40),
               "whOut": rng.randrange(2**40), "timestamp": rng.randrange(2**64)}
    consent = {"meter": _address(rng), "owner": _address(rng), "kind": rng.randrange(256),
               "ratedPowerW": rng.randrange(2**32), "deadline": rng.randrange(2**64)}
    return [bid_typed_data(chain, ESCROW, bid), offer_typed_data(chain, ESCROW, offer),
            reading_typed_data(chain, TOKEN, reading), consent_typed_data(chain, TOKEN, consent)]


@pytest.mark.parametrize("seed", range(20))
def test_signable_is_eth_accounts(seed: int) -> None:
    for message in _messages(random.Random(seed)):
        mine, theirs = signable(message), encode_typed_data(full_message=message)
        assert (bytes(mine.version), bytes(mine.header), bytes(mine.body)) == \
            (bytes(theirs.version), bytes(theirs.header), bytes(theirs.body))


def test_a_bid_signed_and_recovered_through_it_is_the_bidders() -> None:
    key = Account.create()
    bid = {"offer": "0x" + "ab" * 32, "buyer": key.address, "buyerMeter": TOKEN,
           "priceWeiPerKWh": 1234, "maxWh": 5, "nonce": 9, "expiry": 10**9}
    signature = sign_bid(key, 31337, ESCROW, bid)
    full = bid_typed_data(31337, ESCROW, bid)
    expected = Account.sign_message(encode_typed_data(full_message=full), key.key).signature
    assert signature == bytes(expected)
    assert recover_typed(full, signature) == key.address
    parsed = signed.parse_bid(signed.as_json({**bid, "offer": bytes.fromhex("ab" * 32)}))
    assert signed.bid_signer(31337, ESCROW, parsed, signature) == key.address


@pytest.mark.parametrize("field, value", [
    ("priceWeiPerKWh", -1), ("priceWeiPerKWh", 2**256), ("expiry", 2**64), ("maxWh", "5x"),
    ("maxWh", True), ("buyer", "0x1234"), ("buyer", "0x5FbDb2315678afecb367f032d93F642f64180aa3"),
    ("offer", b"short"), ("offer", "0x" + "cd" * 32), ("maxWh", "17"),
])
def test_odd_values_fare_as_with_eth_account(field: str, value: object) -> None:
    """What the direct hash does not take goes to eth-account: refused as it refuses, or
    read as it reads (a decimal string, a hex offer, a mistyped checksum)."""
    full = _messages(random.Random(1))[0]
    full["message"][field] = value
    try:
        theirs = encode_typed_data(full_message=full)
    except Exception as err:
        with pytest.raises(type(err)):
            signable(full)
    else:
        assert bytes(signable(full).body) == bytes(theirs.body)


def test_a_signature_that_cannot_be_read_is_invalid_input() -> None:
    full = _messages(random.Random(3))[0]
    with pytest.raises(InvalidInput, match="signature cannot be read"):
        signed.typed_signer(full, b"\x00" * 64 + b"\x05", "bid")


N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _odd_signatures(good: bytes, rng: random.Random) -> list[bytes]:
    """A good signature and what a page (or an attacker) might send instead of it."""
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    return [
        good, r + (N - s).to_bytes(32, "big") + bytes((55 - v,)),  # its high-s twin
        good[:64] + bytes((v - 27,)), good[:64] + bytes((v + 8,)), good[:64] + b"\x25",
        bytes(32) + good[32:], r + bytes(32) + good[64:], N.to_bytes(32, "big") + good[32:],
        r + N.to_bytes(32, "big") + good[64:], b"\xff" * 64 + good[64:], good[:64],
        good + b"\x00", rng.randbytes(64) + bytes((v,)), rng.randbytes(64) + bytes((55 - v,)),
    ]


def test_recovery_answers_and_refuses_as_eth_account() -> None:
    """contracts.eip712.recover (libsecp256k1 directly for a plain signature) names the same
    signer as Account.recover_message, or refuses with the same error, for every signed
    struct and odd signatures (v 0/1/35/37, r or s zero or n, high s, wrong length, random)."""
    from contracts.eip712 import recover

    rng = random.Random(11)
    key = Account.from_key(rng.randbytes(32))
    for full in _messages(rng) * 3:
        message = signable(full)
        good = bytes(Account.sign_message(message, key.key).signature)
        assert recover(message, good) == key.address
        for signature in _odd_signatures(good, rng):
            try:
                theirs = Account.recover_message(message, signature=signature)
            except Exception as err:
                with pytest.raises(type(err)):
                    recover(message, signature)
            else:
                assert recover(message, signature) == theirs
