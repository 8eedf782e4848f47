"""Protocol v2 frames (docs/PROTOCOL.md): `<kind><id> <VERB> <args>*<CRC>` lines, pure functions.

The CRC is CRC-16/CCITT-FALSE over the session id and the frame, so a frame of another
session fails its check; a v1 frame (XOR byte) is recognised only to refuse its sender clearly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from firmware_bridge.errors import (
    ERR_ARG,
    ERR_CHECKSUM,
    ERR_FRAME,
    ERR_REPLAY,
    ERR_SESSION,
    ERR_VERB,
    FrameError,
    MeterUnavailable,
)

__all__ = [
    "ERR_ARG", "ERR_CHECKSUM", "ERR_FRAME", "ERR_REPLAY", "ERR_SESSION", "ERR_VERB", "EVENT",
    "KINDS", "LEGACY_VERSION", "MAX_LINE", "REPLY", "REQUEST", "VERSION", "Frame", "Hello",
    "Reading", "checksum", "crc16", "decode", "decode_legacy", "encode", "encode_legacy",
    "format_time_factor", "hello_fields", "key_for", "parse_hello", "parse_reading",
    "reading_fields", "split", "verify", "METER_STATES", "no_meter_fields", "MeterUnavailable",
]

VERSION = 2
LEGACY_VERSION = 1  # XOR-checksummed frames: recognised only to refuse their sender clearly
MAX_LINE = 120  # characters of a frame, not counting its "\n" or "\r\n"
MAX_ID = 0xFFFF
METER_STATES = ("OK", "WAIT", "FAULT")  # a reading's METER= (absent: OK)
MAX_TIME_FACTOR = 1_000_000.0
_SESSION = re.compile(r"[0-9A-F]{8}")
REQUEST, REPLY, EVENT = ">", "<", "!"
KINDS = (REQUEST, REPLY, EVENT)
_HEX = "0123456789ABCDEF"


@dataclass(frozen=True)
class Frame:
    """One decoded line: kind (> < !), request id, verb and its arguments."""

    kind: str
    req_id: int
    verb: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reading:
    """What a board's meter measured: electrical values, cumulative energy, relay states."""

    voltage_v: float
    current_a: float
    power_w: float
    wh_in: float
    wh_out: float
    relays: tuple[bool, ...]
    soc: float | None = None
    pv_w: float | None = None
    uptime_s: float = 0.0
    budgets: tuple[float | None, ...] = ()  # Wh left per relay; None where no budget is set
    # "OK", or "FAULT": the meter stopped answering and the values are its last good ones
    # (the board opened its budget-held relays). A reading before any good one has no
    # values at all: parse_reading raises MeterUnavailable for it.
    meter: str = "OK"


@dataclass(frozen=True)
class Hello:
    """What a v2 board's HELLO reply says: who it is, the session it opened, its time factor."""

    version: int
    board_id: str
    kind: str
    relay_count: int
    session: str  # 8 uppercase hex digits, chosen by the board at random per HELLO
    time_factor: float  # emulated seconds per wall-clock second: 1 on a real board


def _crc_table() -> tuple[int, ...]:
    """The CRC of each byte value alone, so crc16 takes a byte per step, not a bit."""
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def checksum(body: str, session: str = "") -> str:
    """The CRC of session + body as four uppercase hex digits."""
    return f"{crc16((session + body).encode('ascii')):04X}"


def key_for(frame: Frame, session: str | None) -> str:
    """The session a frame is checked under: none for a HELLO request, else the open one."""
    if frame.kind == REQUEST and frame.verb == "HELLO":
        return ""
    return session or ""


def _is_token(text: str) -> bool:
    """Printable ASCII without space or '*': what a verb or argument may hold."""
    return bool(text) and all(0x21 <= ord(c) <= 0x7E and c != "*" for c in text)


def _body(kind: str, req_id: int, verb: str, args: tuple[object, ...]) -> str:
    """The frame before its '*': FrameError if a field cannot be sent."""
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind!r}")
    if isinstance(req_id, bool) or not isinstance(req_id, int) or not 0 <= req_id <= MAX_ID:
        raise FrameError(f"request id {req_id!r} is not an integer 0..{MAX_ID}")
    words = [verb, *(str(a) for a in args)]
    for word in words:
        if not _is_token(word):
            raise FrameError(f"field {word!r} must be printable ASCII without spaces or '*'")
    return " ".join([f"{kind}{req_id}", *words])


def _line(body: str, tail: str) -> bytes:
    line = f"{body}*{tail}"
    if len(line) > MAX_LINE:
        raise FrameError(f"frame of {len(line)} characters is longer than {MAX_LINE}")
    return (line + "\n").encode("ascii")


def encode(kind: str, req_id: int, verb: str, *args: object, session: str = "") -> bytes:
    """A frame as the bytes of one "\\n"-terminated line, its CRC keyed with `session`."""
    body = _body(kind, req_id, verb, args)
    return _line(body, checksum(body, session))


def split(line: bytes | str, tail_len: int = 4) -> tuple[Frame, str, str]:
    """(frame, body, CRC digits) of a well-formed line, CRC not yet checked; else FrameError."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError as err:
            raise FrameError("frame has non-ASCII bytes") from err
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise FrameError(f"frame of {len(line)} characters is longer than {MAX_LINE}")
    if any(not 0x20 <= ord(c) <= 0x7E for c in line):
        raise FrameError("frame has control or non-ASCII characters")
    if not line or line[0] not in KINDS:
        raise FrameError("frame must start with '>', '<' or '!'")
    body, star, given = line.rpartition("*")
    # Everything wrong in the `*CRC` tail counts as a checksum error (code 1).
    if not star:
        raise FrameError("frame has no '*' checksum", ERR_CHECKSUM)
    if len(given) != tail_len or any(c not in _HEX for c in given):
        raise FrameError(
            f"checksum {given!r} is not {tail_len} uppercase hex digits", ERR_CHECKSUM
        )
    if "*" in body:
        raise FrameError("frame has more than one '*'")
    head, *words = body.split(" ")
    digits = head[1:]
    if not digits.isdigit() or len(digits) > 5 or int(digits) > MAX_ID:
        raise FrameError(f"request id {digits!r} is not a number 0..{MAX_ID}")
    if not words or any(not w for w in words):
        raise FrameError("frame has no verb, or has empty fields (double or trailing spaces)")
    return Frame(line[0], int(digits), words[0], tuple(words[1:])), body, given


def verify(body: str, given: str, session: str) -> None:
    """FrameError (code 1) unless the CRC digits match body under the session."""
    expected = checksum(body, session)
    if expected != given:
        raise FrameError(f"checksum mismatch: frame says {given}, the session gives {expected}",
                         ERR_CHECKSUM)


def decode(line: bytes | str, session: str | None = None) -> Frame:
    """Parse one line and check its CRC under the session (none for a HELLO request)."""
    frame, body, given = split(line)
    verify(body, given, key_for(frame, session))
    return frame


def _xor(body: str) -> str:
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def encode_legacy(kind: str, req_id: int, verb: str, *args: object) -> bytes:
    """A protocol v1 frame (XOR checksum): only to tell a v1 host this board speaks v2."""
    body = _body(kind, req_id, verb, args)
    return _line(body, _xor(body))


def decode_legacy(line: bytes | str) -> Frame:
    """A protocol v1 frame, XOR checked; FrameError if the line is not one."""
    frame, body, given = split(line, tail_len=2)
    if _xor(body) != given:
        raise FrameError("not a v1 frame: XOR checksum mismatch", ERR_CHECKSUM)
    return frame


def format_time_factor(factor: float) -> str:
    """A time factor as the TF field: a plain decimal, at most 3 decimals, no trailing zeros."""
    if not math.isfinite(factor) or not 0.001 <= factor <= MAX_TIME_FACTOR:
        raise FrameError(f"time factor {factor!r} must be 0.001..{MAX_TIME_FACTOR:.0f}")
    return f"{factor:.3f}".rstrip("0").rstrip(".")


def hello_fields(hello: Hello) -> list[str]:
    """The arguments of an OK HELLO reply after the verb echo."""
    return [str(hello.version), hello.board_id, hello.kind, str(hello.relay_count),
            f"SESSION={hello.session}", f"TF={format_time_factor(hello.time_factor)}"]


def parse_hello(args: tuple[str, ...] | list[str]) -> Hello:
    """A Hello from an OK HELLO reply's arguments (after the verb echo); FrameError if bad."""
    if not args or not args[0].isdigit():
        raise FrameError(f"HELLO reply {list(args)} names no protocol version", ERR_ARG)
    version = int(args[0])
    if version != VERSION:  # checked first: another version may lay its fields out otherwise
        raise FrameError(f"board speaks protocol v{version}; this bridge needs v{VERSION}")
    if len(args) < 6 or args[2] not in ("producer", "consumer") or not args[3].isdigit():
        raise FrameError(f"malformed HELLO reply {list(args)}", ERR_ARG)
    keys = dict(a.partition("=")[::2] for a in args[4:])
    session, factor = keys.get("SESSION", ""), keys.get("TF", "")
    if not _SESSION.fullmatch(session):
        raise FrameError(f"HELLO reply SESSION={session!r} is not 8 uppercase hex digits",
                         ERR_ARG)
    try:
        time_factor = float(factor)
    except ValueError as err:
        raise FrameError(f"HELLO reply TF={factor!r} is not a number", ERR_ARG) from err
    if not math.isfinite(time_factor) or not 0 < time_factor <= MAX_TIME_FACTOR:
        raise FrameError(f"HELLO reply TF={factor!r} is out of range", ERR_ARG)
    return Hello(version, args[1], args[2], int(args[3]), session, time_factor)


def reading_fields(reading: Reading) -> list[str]:
    """A reading as the `KEY=value` arguments of READ replies and READING messages."""
    fields = [
        f"V={reading.voltage_v:.2f}",
        f"I={reading.current_a:.3f}",
        f"P={reading.power_w:.1f}",
        f"WHIN={reading.wh_in:.3f}",
        f"WHOUT={reading.wh_out:.3f}",
        "RELAYS=" + "".join("1" if r else "0" for r in reading.relays),
    ]
    if reading.soc is not None:
        fields.append(f"SOC={reading.soc:.3f}")
    if reading.pv_w is not None:
        fields.append(f"PV={reading.pv_w:.1f}")
    if reading.meter != "OK":
        fields.append(f"METER={reading.meter}")
    return fields + _tail_fields(reading.uptime_s, reading.budgets)


def no_meter_fields(relays: tuple[bool, ...], state: str, uptime_s: float,
                    budgets: tuple[float | None, ...]) -> list[str]:
    """A reading's fields before the meter ever answered: no values, METER=WAIT or FAULT."""
    return ["RELAYS=" + "".join("1" if r else "0" for r in relays), f"METER={state}",
            *_tail_fields(uptime_s, budgets)]


def _tail_fields(uptime_s: float, budgets: tuple[float | None, ...]) -> list[str]:
    fields = [f"T={uptime_s:.1f}"]
    if budgets:
        fields.append("BUDGET=" + ",".join("-" if b is None else f"{b:.3f}" for b in budgets))
    return fields


def parse_reading(args: tuple[str, ...] | list[str]) -> Reading:
    """A Reading from `KEY=value` arguments; FrameError on a missing or malformed field."""
    values: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not key:
            raise FrameError(f"reading field {arg!r} is not KEY=value", ERR_ARG)
        values[key] = value  # unknown keys are ignored: newer boards may add fields
    relays = values.get("RELAYS")
    if not relays or set(relays) - {"0", "1"}:
        raise FrameError(f"RELAYS={relays!r} must be a non-empty string of 0 and 1", ERR_ARG)
    meter = values.get("METER", "OK")
    if meter not in METER_STATES:
        raise FrameError(f"METER={meter!r} is not one of {'/'.join(METER_STATES)}", ERR_ARG)
    if meter != "OK" and "V" not in values:
        raise MeterUnavailable(meter)
    return Reading(
        voltage_v=_number(values, "V"),
        current_a=_number(values, "I"),
        power_w=_number(values, "P"),
        wh_in=_number(values, "WHIN"),
        wh_out=_number(values, "WHOUT"),
        relays=tuple(c == "1" for c in relays),
        soc=_number(values, "SOC") if "SOC" in values else None,
        pv_w=_number(values, "PV") if "PV" in values else None,
        uptime_s=_number(values, "T"),
        budgets=_budgets(values.get("BUDGET")),
        meter=meter,
    )


def _budgets(text: str | None) -> tuple[float | None, ...]:
    """The BUDGET field: Wh left per relay, `-` where none is set."""
    if not text:
        return ()
    budgets: list[float | None] = []
    for part in text.split(","):
        if part == "-":
            budgets.append(None)
            continue
        try:
            value = float(part)
        except ValueError as err:
            raise FrameError(f"BUDGET entry {part!r} is not a number or -", ERR_ARG) from err
        if not math.isfinite(value) or value < 0:
            raise FrameError(f"BUDGET entry {part!r} must be a finite number >= 0", ERR_ARG)
        budgets.append(value)
    return tuple(budgets)


def _number(values: dict[str, str], key: str) -> float:
    """A finite float field of a reading, or FrameError naming the field."""
    if key not in values:
        raise FrameError(f"reading lacks field {key}", ERR_ARG)
    try:
        value = float(values[key])
    except ValueError as err:
        raise FrameError(f"reading field {key}={values[key]!r} is not a number", ERR_ARG) from err
    if not math.isfinite(value):
        raise FrameError(f"reading field {key}={values[key]!r} is not finite", ERR_ARG)
    return value
