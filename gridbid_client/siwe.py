"""Sign-In with Ethereum (EIP-4361): the message, its exact text, a strict parser and verify()."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils import is_checksum_address, is_hex_address
from eth_utils.exceptions import ValidationError

__all__ = ["SiweError", "SiweMessage", "new_nonce", "parse_time", "rfc3339", "verify"]

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"

# RFC 3986 character classes, as the ABNF of EIP-4361 uses them.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_GEN_DELIMS = r":/?#\[\]@"
_PCT = r"%[0-9A-Fa-f]{2}"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_AUTHORITY = re.compile(
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"  # userinfo
    rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+)"  # host
    r"(?::[0-9]*)?"  # port
)
# A URI is a scheme, a colon, then URI characters only (no spaces, no controls, no quotes).
_URI_CHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}{_GEN_DELIMS}]|{_PCT})"
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:{_URI_CHAR}*")
_STATEMENT = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}{_GEN_DELIMS} ]+")
_REQUEST_ID = re.compile(rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_ID = re.compile(r"[0-9]+")
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
_NONCE_ALPHABET = string.ascii_letters + string.digits


class SiweError(ValueError):
    """A Sign-In with Ethereum message is malformed, or its signature or terms do not hold."""


def parse_time(value: str, field: str = "time") -> datetime:
    """An RFC 3339 date-time string as an aware datetime; SiweError when it is not one."""
    match = _DATE_TIME.fullmatch(value)
    if not match:
        raise SiweError(f"{field} {value!r} is not an RFC 3339 date-time (2021-09-30T16:25:24Z).")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise SiweError(f"{field} {value!r} has an impossible UTC offset.")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError as err:
        raise SiweError(f"{field} {value!r} is not a real date and time ({err}).") from err


def rfc3339(when: datetime | float) -> str:
    """A datetime (naive = UTC) or POSIX seconds as an RFC 3339 UTC string, 'Z'-suffixed."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    spec = "seconds" if when.microsecond == 0 else "milliseconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def new_nonce() -> str:
    """A fresh random nonce: 17 alphanumeric characters (about 101 bits) from secrets."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(17))


def _as_datetime(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime.fromtimestamp(now, UTC)


@dataclass(frozen=True)
class SiweMessage:
    """One EIP-4361 message; every field is checked on construction, times kept as given."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    statement: str | None = None
    version: str = "1"
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()
    scheme: str | None = None  # the spec's optional "https://" before the domain

    def __post_init__(self) -> None:
        # Times may be handed in as datetimes; they are kept as their RFC 3339 text so a
        # parsed message prints back byte for byte.
        for name in ("issued_at", "expiration_time", "not_before"):
            value = getattr(self, name)
            if isinstance(value, datetime | int | float) and not isinstance(value, bool):
                object.__setattr__(self, name, rfc3339(value))
        object.__setattr__(self, "resources", tuple(self.resources))
        self._check()

    def _check(self) -> None:
        if self.scheme is not None and not _SCHEME.fullmatch(self.scheme):
            raise SiweError(f"Scheme {self.scheme!r} is not an RFC 3986 URI scheme.")
        if not isinstance(self.domain, str) or not _AUTHORITY.fullmatch(self.domain):
            raise SiweError(f"Domain {self.domain!r} is not an RFC 3986 authority (host[:port]).")
        if not isinstance(self.address, str) or not is_hex_address(self.address):
            raise SiweError(f"Address {self.address!r} is not an Ethereum address (0x + 40 hex).")
        if not is_checksum_address(self.address):
            raise SiweError(f"Address {self.address} is not in its EIP-55 checksummed form.")
        if self.statement is not None and not _STATEMENT.fullmatch(self.statement):
            raise SiweError(
                "The statement must be one non-empty line of printable ASCII URI characters."
            )
        if not isinstance(self.uri, str) or not _URI.fullmatch(self.uri):
            raise SiweError(f"URI {self.uri!r} is not an RFC 3986 URI.")
        if self.version != "1":
            raise SiweError(f"Version must be 1, not {self.version!r}.")
        if not isinstance(self.chain_id, int) or isinstance(self.chain_id, bool):
            raise SiweError(f"Chain ID {self.chain_id!r} is not an integer.")
        if self.chain_id < 0:
            raise SiweError("Chain ID must not be negative.")
        if not isinstance(self.nonce, str) or not _NONCE.fullmatch(self.nonce):
            raise SiweError("The nonce must be at least 8 letters or digits (A-Z, a-z, 0-9).")
        parse_time(self.issued_at, "Issued At")
        if self.expiration_time is not None:
            parse_time(self.expiration_time, "Expiration Time")
        if self.not_before is not None:
            parse_time(self.not_before, "Not Before")
        if self.request_id is not None and not _REQUEST_ID.fullmatch(self.request_id):
            raise SiweError(f"Request ID {self.request_id!r} has characters a URI path cannot.")
        for resource in self.resources:
            if not isinstance(resource, str) or not _URI.fullmatch(resource):
                raise SiweError(f"Resource {resource!r} is not an RFC 3986 URI.")

    def text(self) -> str:
        """The message exactly as EIP-4361 lays it out: the text a wallet signs."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [origin + HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """The message a text holds; SiweError naming the first line that deviates from EIP-4361."""
        if not isinstance(text, str):
            raise SiweError("A Sign-In with Ethereum message is text.")
        if "\r" in text:
            raise SiweError("Lines must end with LF alone; the message has a carriage return.")
        message = cls(**_Parser(text.split("\n")).fields())
        # The layout is canonical, so anything the line rules let through that would not print
        # back identically (a trailing newline, say) is a deviation too.
        if message.text() != text:
            raise SiweError("The message does not follow EIP-4361's exact layout.")
        return message

    @property
    def issued_at_time(self) -> datetime:
        """Issued At as an aware datetime."""
        return parse_time(self.issued_at, "Issued At")

    @property
    def expiration(self) -> datetime | None:
        """Expiration Time as an aware datetime, or None."""
        return parse_time(self.expiration_time) if self.expiration_time else None

    @property
    def valid_from(self) -> datetime | None:
        """Not Before as an aware datetime, or None."""
        return parse_time(self.not_before) if self.not_before else None


# The tagged lines after the statement, in the order EIP-4361 fixes; True = required.
_TAGGED = (
    ("URI", "uri", True),
    ("Version", "version", True),
    ("Chain ID", "chain_id", True),
    ("Nonce", "nonce", True),
    ("Issued At", "issued_at", True),
    ("Expiration Time", "expiration_time", False),
    ("Not Before", "not_before", False),
    ("Request ID", "request_id", False),
)
_TAG_NAMES = {tag for tag, _, _ in _TAGGED} | {"Resources"}


class _Parser:
    """Walks a message's lines once, in the order the ABNF fixes."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.at = 0

    def _line(self, what: str) -> str:
        if self.at >= len(self.lines):
            raise SiweError(f"The message ends before {what}.")
        line = self.lines[self.at]
        self.at += 1
        return line

    def _blank(self, where: str) -> None:
        if self._line(f"the blank line {where}") != "":
            raise SiweError(f"Line {self.at} must be blank ({where}).")

    def fields(self) -> dict:
        """The keyword arguments of SiweMessage, read line by line."""
        out: dict = {}
        header = self._line("the header")
        if not header.endswith(HEADER_SUFFIX):
            raise SiweError(f"The first line must read '<domain>{HEADER_SUFFIX}'.")
        origin = header[: -len(HEADER_SUFFIX)]
        if "://" in origin:
            out["scheme"], origin = origin.split("://", 1)
        out["domain"] = origin
        out["address"] = self._line("the address")
        self._blank("after the address")
        following = self._line("the statement or the blank line before URI")
        if following != "":
            # Two blank lines precede URI when there is no statement; a statement that itself
            # starts with "URI: " is refused rather than guessed at.
            if following.startswith("URI: "):
                raise SiweError(
                    f"Line {self.at} must be blank: without a statement, two blank lines "
                    "come before 'URI:'."
                )
            out["statement"] = following
            self._blank("after the statement")
        self._tagged(out)
        return out

    def _tagged(self, out: dict) -> None:
        for tag, name, required in _TAGGED:
            if self.at >= len(self.lines):
                if required:
                    raise SiweError(f"The message ends before its '{tag}:' line.")
                return
            line = self.lines[self.at]
            if not line.startswith(f"{tag}: "):
                if required:
                    raise SiweError(f"Line {self.at + 1} must be '{tag}: …', not {line!r}.")
                continue
            self.at += 1
            value = line[len(tag) + 2 :]
            if name == "chain_id":
                if not _CHAIN_ID.fullmatch(value):
                    raise SiweError(f"Chain ID {value!r} is not a decimal number.")
                out[name] = int(value)
            else:
                out[name] = value
        if self.at < len(self.lines):
            self._resources(out)

    def _resources(self, out: dict) -> None:
        line = self.lines[self.at]
        if line != "Resources:":
            tag = line.split(":", 1)[0]
            if tag in _TAG_NAMES:
                raise SiweError(f"Line {self.at + 1} ('{tag}:') is out of order or repeated.")
            raise SiweError(f"Line {self.at + 1} is not an EIP-4361 field: {line!r}.")
        resources = []
        for number, item in enumerate(self.lines[self.at + 1 :], start=self.at + 2):
            if not item.startswith("- "):
                raise SiweError(f"Line {number} must be a resource, '- <URI>', not {item!r}.")
            resources.append(item[2:])
        if not resources:
            # The ABNF allows an empty list, but it would not print back: refuse it.
            raise SiweError("'Resources:' must be followed by at least one '- <URI>' line.")
        out["resources"] = tuple(resources)
        self.at = len(self.lines)


def _signature_bytes(signature: str | bytes) -> bytes:
    if isinstance(signature, str):
        body = signature[2:] if signature[:2] in ("0x", "0X") else signature
        if not re.fullmatch(r"[0-9A-Fa-f]{130}", body):
            raise SiweError("The signature must be 65 bytes, written as 130 hex digits.")
        raw = bytes.fromhex(body)
    elif isinstance(signature, bytes | bytearray) and len(signature) == 65:
        raw = bytes(signature)
    else:
        raise SiweError("The signature must be 65 bytes.")
    # personal_sign gives v = 27/28 (some hardware wallets 0/1); an EIP-155 style v has no
    # place on a message, so it is refused rather than normalised.
    if raw[64] not in (0, 1, 27, 28):
        raise SiweError(f"The signature's recovery byte v = {raw[64]} is not 0, 1, 27 or 28.")
    return raw


def recover(text: str, signature: str | bytes) -> str:
    """The checksummed address whose EIP-191 personal_sign of text is signature."""
    raw = _signature_bytes(signature)
    try:
        return Account.recover_message(encode_defunct(text=text), signature=raw)
    except (BadSignature, ValidationError, ValueError) as err:
        raise SiweError("The signature does not recover to any account.") from err


def verify(
    message_text: str,
    signature: str | bytes,
    *,
    domain: str,
    nonce: str,
    now: datetime | float,
    skew_s: float = 60,
    chain_id: int | None = None,
) -> SiweMessage:
    """The parsed message when its signer, domain, nonce and times hold now; SiweError if not."""
    message = SiweMessage.parse(message_text)
    signer = recover(message_text, signature)
    if signer != message.address:
        raise SiweError(f"The message is signed by {signer}, not by {message.address}.")
    if message.domain != domain:
        raise SiweError(f"The message is for {message.domain}, not for {domain}.")
    if message.nonce != nonce:
        raise SiweError("The message's nonce is not the one this session was given.")
    if chain_id is not None and message.chain_id != chain_id:
        raise SiweError(f"The message is for chain {message.chain_id}, not chain {chain_id}.")
    current = _as_datetime(now)
    if message.issued_at_time > current + timedelta(seconds=skew_s):
        raise SiweError(f"The message is issued in the future ({message.issued_at}).")
    expiration = message.expiration
    if expiration is not None and current >= expiration:
        raise SiweError(f"The message expired at {message.expiration_time}.")
    valid_from = message.valid_from
    if valid_from is not None and current < valid_from:
        raise SiweError(f"The message is not valid before {message.not_before}.")
    return message
