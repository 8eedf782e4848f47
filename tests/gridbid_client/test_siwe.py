"""EIP-4361 messages: the spec's own examples, the exact layout, strict parsing and verify()."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from gridbid_client.siwe import SiweError, SiweMessage, new_nonce, parse_time, verify

# The three example messages of ERC-4361 (ethereum/ERCs, ERCS/erc-4361.md, "Examples"), verbatim.
SPEC_IMPLICIT_SCHEME = """\
example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""

SPEC_EXPLICIT_PORT = """\
example.com:3388 wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""

SPEC_EXPLICIT_SCHEME = """\
https://example.com wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ExampleOrg Terms of Service: https://example.com/tos

URI: https://example.com/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""

# Fixed test keys: the signer, and a stranger whose signature must never pass for the signer's.
SIGNER = Account.from_key("0x" + "4c" * 32)
STRANGER = Account.from_key("0x" + "7e" * 32)
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def sign(text: str, account=SIGNER) -> str:
    """An EIP-191 personal_sign of text, as a 0x-hex string."""
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex()


def portal_message(**changes) -> SiweMessage:
    """A message like the portal hands out: statement, 5 minutes' validity, a fresh nonce."""
    fields = dict(
        domain="localhost:5000",
        address=SIGNER.address,
        statement="Sign in to gridbid.",
        uri="http://localhost:5000/",
        chain_id=31337,
        nonce="k3Yq9cX2b7LpR0sTz",
        issued_at=NOW,
        expiration_time=NOW + timedelta(minutes=5),
    )
    fields.update(changes)
    return SiweMessage(**fields)


def check(text: str, signature: str, **changes):
    """verify() with the terms portal_message was made for, some of them changed."""
    terms = dict(domain="localhost:5000", nonce="k3Yq9cX2b7LpR0sTz", now=NOW)
    terms.update(changes)
    return verify(text, signature, **terms)


# -- the spec's examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [SPEC_IMPLICIT_SCHEME, SPEC_EXPLICIT_PORT, SPEC_EXPLICIT_SCHEME],
    ids=["implicit", "port", "scheme"],
)
def test_spec_examples_round_trip_byte_for_byte(text):
    message = SiweMessage.parse(text)
    assert message.text() == text
    assert message.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert message.chain_id == 1 and message.nonce == "32891756" and message.version == "1"
    assert message.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )


def test_spec_example_fields():
    explicit = SiweMessage.parse(SPEC_EXPLICIT_SCHEME)
    assert (explicit.scheme, explicit.domain) == ("https", "example.com")
    assert SiweMessage.parse(SPEC_EXPLICIT_PORT).domain == "example.com:3388"
    implicit = SiweMessage.parse(SPEC_IMPLICIT_SCHEME)
    assert implicit.scheme is None
    assert implicit.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert implicit.uri == "https://example.com/login"
    assert implicit.issued_at_time == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)


# -- the layout ----------------------------------------------------------------------------------


def test_text_layout_with_every_field():
    message = portal_message(not_before=NOW, request_id="req-1", resources=["https://a.example/x"])
    assert message.text() == (
        "localhost:5000 wants you to sign in with your Ethereum account:\n"
        f"{SIGNER.address}\n"
        "\n"
        "Sign in to gridbid.\n"
        "\n"
        "URI: http://localhost:5000/\n"
        "Version: 1\n"
        "Chain ID: 31337\n"
        "Nonce: k3Yq9cX2b7LpR0sTz\n"
        "Issued At: 2026-12-01T12:00:00Z\n"
        "Expiration Time: 2026-12-01T12:05:00Z\n"
        "Not Before: 2026-12-01T12:00:00Z\n"
        "Request ID: req-1\n"
        "Resources:\n"
        "- https://a.example/x"
    )
    assert SiweMessage.parse(message.text()) == message


def test_without_statement_two_blank_lines_precede_uri():
    message = portal_message(statement=None, expiration_time=None)
    assert f"{SIGNER.address}\n\n\nURI: " in message.text()
    assert SiweMessage.parse(message.text()) == message


def test_times_keep_their_precision_and_offset():
    text = portal_message(issued_at="2026-12-01T13:00:00.123+01:00").text()
    message = SiweMessage.parse(text)
    assert message.issued_at == "2026-12-01T13:00:00.123+01:00"
    assert message.issued_at_time == datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert message.text() == text


def test_new_nonce_is_17_alphanumerics_and_fresh():
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 17 and n.isascii() and n.isalnum() for n in nonces)


# -- strict parsing: each deviation from the spec's example is refused with a sentence ------------

DEVIATIONS = {
    "wrong header": ("wants you to sign in", "wants you to log in"),
    "no header domain": ("example.com wants", " wants"),
    "domain with a path": ("example.com wants", "example.com/x wants"),
    "lowercase address": (
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "0x" + "c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    ),
    "bad checksum": (
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "0xC02AAA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    ),
    "short address": (
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756",
    ),
    "no blank after address": ("Cc2\n\nI accept", "Cc2\nI accept"),
    "no blank after statement": ("tos\n\nURI", "tos\nURI"),
    "statement on two lines": ("Terms of Service:", "Terms\nof Service:"),
    "missing URI": ("URI: https://example.com/login\n", ""),
    "missing version": ("Version: 1\n", ""),
    "version 2": ("Version: 1", "Version: 2"),
    "missing chain id": ("Chain ID: 1\n", ""),
    "chain id not a number": ("Chain ID: 1", "Chain ID: one"),
    "missing nonce": ("Nonce: 32891756\n", ""),
    "short nonce": ("Nonce: 32891756", "Nonce: 3289175"),
    "nonce with a dash": ("Nonce: 32891756", "Nonce: 3289-1756"),
    "missing issued at": ("Issued At: 2021-09-30T16:25:24Z\n", ""),
    "time without offset": ("16:25:24Z", "16:25:24"),
    "time with a space": ("2021-09-30T16:25:24Z", "2021-09-30 16:25:24Z"),
    "impossible date": ("2021-09-30T", "2021-02-30T"),
    "version and uri swapped": (
        "URI: https://example.com/login\nVersion: 1",
        "Version: 1\nURI: https://example.com/login",
    ),
    "field repeated": ("Nonce: 32891756\n", "Nonce: 32891756\nNonce: 32891756\n"),
    "unknown field": ("Resources:", "Colour: blue\nResources:"),
    "resource without dash": ("- https://example.com/my", "https://example.com/my"),
    "resource not a uri": ("- https://example.com/my-web2-claim.json", "- not a uri"),
    "trailing newline": ("claim.json", "claim.json\n"),
    "carriage returns": ("\n", "\r\n"),
    "leading space": ("example.com wants", " example.com wants"),
}


@pytest.mark.parametrize("name", DEVIATIONS)
def test_parse_refuses_each_deviation(name):
    old, new = DEVIATIONS[name]
    assert old in SPEC_IMPLICIT_SCHEME  # the deviation really changes the example
    with pytest.raises(SiweError) as refused:
        SiweMessage.parse(SPEC_IMPLICIT_SCHEME.replace(old, new))
    assert str(refused.value).endswith(".")  # a sentence, not a bare token


def test_optional_fields_out_of_order_are_refused():
    good = portal_message(not_before=NOW).text()
    swapped = good.replace(
        "Expiration Time: 2026-12-01T12:05:00Z\nNot Before: 2026-12-01T12:00:00Z",
        "Not Before: 2026-12-01T12:00:00Z\nExpiration Time: 2026-12-01T12:05:00Z",
    )
    assert swapped != good
    SiweMessage.parse(good)
    with pytest.raises(SiweError, match="out of order"):
        SiweMessage.parse(swapped)


def test_construction_checks_fields_too():
    with pytest.raises(SiweError, match="checksummed"):
        portal_message(address=SIGNER.address.lower())
    with pytest.raises(SiweError, match="nonce"):
        portal_message(nonce="abc")
    with pytest.raises(SiweError, match="statement"):
        portal_message(statement="two\nlines")
    with pytest.raises(SiweError, match="RFC 3339"):
        portal_message(issued_at="yesterday")


def test_parse_time_refuses_bad_offsets():
    with pytest.raises(SiweError):
        parse_time("2021-09-30T16:25:24+25:00")
    assert parse_time("2021-09-30T16:25:24-02:30").utcoffset() == -timedelta(hours=2, minutes=30)


# -- verify --------------------------------------------------------------------------------------


def test_a_message_signed_with_a_known_key_verifies():
    text = portal_message().text()
    message = check(text, sign(text))
    assert message.address == SIGNER.address
    # bytes signatures and POSIX-seconds clocks work the same
    raw = SIGNER.sign_message(encode_defunct(text=text)).signature
    assert check(text, bytes(raw), now=NOW.timestamp()) == message


def test_issued_at_within_the_clock_skew_is_accepted():
    text = portal_message(issued_at=NOW + timedelta(seconds=50)).text()
    assert check(text, sign(text))
    text = portal_message(issued_at=NOW + timedelta(seconds=70)).text()
    with pytest.raises(SiweError, match="future"):
        check(text, sign(text))


def tampered(what: str) -> tuple[str, str, dict]:
    """(text, signature, changed terms) for one attack on a good signed message."""
    good = portal_message(not_before=NOW - timedelta(minutes=1)).text()
    signature = sign(good)
    if what == "other domain expected":
        return good, signature, {"domain": "evil.example"}
    if what == "domain rewritten after signing":
        return (
            good.replace("localhost:5000 wants", "evil.example wants"),
            signature,
            {"domain": "evil.example"},
        )
    if what == "signed for another domain":
        text = portal_message(domain="evil.example").text()
        return text, sign(text), {}
    if what == "other nonce expected":
        return good, signature, {"nonce": "AAAAAAAAAAAAAAAAA"}
    if what == "nonce rewritten after signing":
        return (
            good.replace("k3Yq9cX2b7LpR0sTz", "AAAAAAAAAAAAAAAAA"),
            signature,
            {"nonce": "AAAAAAAAAAAAAAAAA"},
        )
    if what == "address rewritten":
        return good.replace(SIGNER.address, STRANGER.address), signature, {}
    if what == "expiry passed":
        return good, signature, {"now": NOW + timedelta(minutes=5)}
    if what == "not before in the future":
        text = portal_message(not_before=NOW + timedelta(minutes=2)).text()
        return text, sign(text), {}
    if what == "statement altered":
        return good.replace("Sign in to gridbid.", "Sign in to gridbid!"), signature, {}
    if what == "signed by another key":
        return good, sign(good, STRANGER), {}
    if what == "stranger claims the signer's address":
        return good, sign(good.replace(SIGNER.address, STRANGER.address), STRANGER), {}
    if what == "wrong chain":
        return good, signature, {"chain_id": 1}
    raise AssertionError(what)


ATTACKS = [
    "other domain expected",
    "domain rewritten after signing",
    "signed for another domain",
    "other nonce expected",
    "nonce rewritten after signing",
    "address rewritten",
    "expiry passed",
    "not before in the future",
    "statement altered",
    "signed by another key",
    "stranger claims the signer's address",
    "wrong chain",
]


def test_the_untampered_message_verifies():
    good = portal_message(not_before=NOW - timedelta(minutes=1)).text()
    assert check(good, sign(good), chain_id=31337).address == SIGNER.address


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_tampering_is_refused(attack):
    text, signature, terms = tampered(attack)
    with pytest.raises(SiweError):
        check(text, signature, **terms)


def good_signature_bytes() -> bytes:
    return bytes(SIGNER.sign_message(encode_defunct(text=portal_message().text())).signature)


MALFORMED = {
    "empty": "",
    "not hex": "0x" + "zz" * 65,
    "64 bytes": "0x" + good_signature_bytes()[:64].hex(),
    "66 bytes": "0x" + (good_signature_bytes() + b"\x00").hex(),
    "v = 5": "0x" + (good_signature_bytes()[:64] + bytes([5])).hex(),
    "EIP-155 style v = 37": "0x" + (good_signature_bytes()[:64] + bytes([37])).hex(),
    "all zero": "0x" + "00" * 65,
    "r and s past the curve order": "0x" + "ff" * 64 + "1b",
    "short bytes": good_signature_bytes()[:10],
    "not a string or bytes": 12345,
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_signatures_are_refused(name):
    text = portal_message().text()
    with pytest.raises(SiweError):
        check(text, MALFORMED[name])


def test_verify_refuses_a_message_that_does_not_parse():
    text = portal_message().text()
    with pytest.raises(SiweError):
        check(text + "\n", sign(text + "\n"))


def test_changing_a_field_changes_the_text():
    message = portal_message()
    assert replace(message, nonce="ZZZZZZZZZZ").text() != message.text()
