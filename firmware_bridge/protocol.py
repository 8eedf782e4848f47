"""Protocol v1 frames (docs/PROTOCOL.md): `<kind><id> <VERB> <args>*<CS>` lines, pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.errors import ERR_ARG, ERR_CHECKSUM, ERR_FRAME, ERR_VERB, FrameError

__all__ = [
    "ERR_ARG", "ERR_CHECKSUM", "ERR_FRAME", "ERR_VERB", "EVENT", "KINDS", "MAX_LINE", "REPLY",
    "REQUEST", "VERSION", "Frame", "Reading", "checksum", "decode", "encode", "parse_reading",
    "reading_fields",
]

VERSION = 1
MAX_LINE = 120  # characters of a frame, not counting its "\n" or "\r\n"
MAX_ID = 0xFFFF
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


def checksum(body: str) -> str:
    """XOR of the body's bytes as two uppercase hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def _is_token(text: str) -> bool:
    """Printable ASCII without space or '*': what a verb or argument may hold."""
    return bool(text) and all(0x21 <= ord(c) <= 0x7E and c != "*" for c in text)


def encode(kind: str, req_id: int, verb: str, *args: object) -> bytes:
    """A frame as the bytes of one "\\n"-terminated line; FrameError if it cannot be sent."""
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind!r}")
    if isinstance(req_id, bool) or not isinstance(req_id, int) or not 0 <= req_id <= MAX_ID:
        raise FrameError(f"request id {req_id!r} is not an integer 0..{MAX_ID}")
    words = [verb, *(str(a) for a in args)]
    for word in words:
        if not _is_token(word):
            raise FrameError(f"field {word!r} must be printable ASCII without spaces or '*'")
    body = " ".join([f"{kind}{req_id}", *words])
    line = f"{body}*{checksum(body)}"
    if len(line) > MAX_LINE:
        raise FrameError(f"frame of {len(line)} characters is longer than {MAX_LINE}")
    return (line + "\n").encode("ascii")


def decode(line: bytes | str) -> Frame:
    """Parse one line (with or without its line ending); FrameError says what is wrong."""
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
    # Everything wrong in the `*CS` tail counts as a checksum error (code 1).
    if not star:
        raise FrameError("frame has no '*' checksum", ERR_CHECKSUM)
    if len(given) != 2 or any(c not in _HEX for c in given):
        raise FrameError(f"checksum {given!r} is not two uppercase hex digits", ERR_CHECKSUM)
    if "*" in body:
        raise FrameError("frame has more than one '*'")
    if checksum(body) != given:
        raise FrameError(
            f"checksum mismatch: frame says {given}, content gives {checksum(body)}", ERR_CHECKSUM
        )
    head, *words = body.split(" ")
    digits = head[1:]
    if not digits.isdigit() or len(digits) > 5 or int(digits) > MAX_ID:
        raise FrameError(f"request id {digits!r} is not a number 0..{MAX_ID}")
    if not words or any(not w for w in words):
        raise FrameError("frame has no verb, or has empty fields (double or trailing spaces)")
    return Frame(line[0], int(digits), words[0], tuple(words[1:]))


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
    fields.append(f"T={reading.uptime_s:.1f}")
    if reading.budgets:
        fields.append("BUDGET=" + ",".join("-" if b is None else f"{b:.3f}"
                                           for b in reading.budgets))
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
