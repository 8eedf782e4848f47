"""Protocol v1 frames (docs/PROTOCOL.md): `<kind><id> <VERB> <args>*<CS>` lines, pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import FrameError

VERSION = 1
MAX_LINE = 120
REQUEST, REPLY, EVENT = ">", "<", "!"
KINDS = (REQUEST, REPLY, EVENT)

# Error codes a board answers with.
ERR_CHECKSUM, ERR_VERB, ERR_ARG, ERR_FRAME = 1, 2, 3, 4


@dataclass(frozen=True)
class Frame:
    """One decoded line."""

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


def checksum(body: str) -> str:
    """XOR of the body's bytes as two uppercase hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def encode(kind: str, req_id: int, verb: str, *args: object) -> bytes:
    """A frame as the bytes of one line."""
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind!r}")
    if not 0 <= req_id <= 0xFFFF:
        raise FrameError(f"request id {req_id} out of range 0..65535")
    parts = [f"{kind}{req_id}", verb, *(str(a) for a in args)]
    if any(not p or " " in p or "*" in p or "\n" in p for p in parts[1:]):
        raise FrameError("verb and arguments must be non-empty and free of spaces and '*'")
    body = " ".join(parts)
    line = f"{body}*{checksum(body)}\n"
    if len(line) > MAX_LINE:
        raise FrameError(f"frame longer than {MAX_LINE} characters")
    return line.encode("ascii")


def decode(line: bytes | str) -> Frame:
    """Parse one line (with or without its line ending); FrameError says what is wrong."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError as err:
            raise FrameError("frame has non-ASCII bytes") from err
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE:
        raise FrameError(f"frame longer than {MAX_LINE} characters")
    if not line or line[0] not in KINDS:
        raise FrameError("frame must start with '>', '<' or '!'")
    body, star, given = line.rpartition("*")
    if not star:
        raise FrameError("frame has no '*' checksum separator")
    if len(given) != 2 or given.upper() != given or any(c not in "0123456789ABCDEF" for c in given):
        raise FrameError(f"checksum {given!r} is not two uppercase hex digits")
    if checksum(body) != given:
        raise FrameError(f"checksum mismatch: frame says {given}, content gives {checksum(body)}")
    parts = body.split(" ")
    head = parts[0][1:]
    if not head.isdigit() or int(head) > 0xFFFF:
        raise FrameError(f"request id {head!r} is not a number 0..65535")
    if len(parts) < 2 or not parts[1] or any(not p for p in parts[1:]):
        raise FrameError("frame has no verb or has empty fields")
    return Frame(line[0], int(head), parts[1], tuple(parts[2:]))


def reading_fields(reading: Reading) -> list[str]:
    """A reading as `KEY=value` arguments."""
    fields = [
        f"V={reading.voltage_v:.2f}",
        f"I={reading.current_a:.3f}",
        f"P={reading.power_w:.1f}",
        f"WHIN={reading.wh_in:.3f}",
        f"WHOUT={reading.wh_out:.3f}",
        "RELAYS=" + "".join("1" if r else "0" for r in reading.relays),
    ]
    if reading.soc is not None:
        fields.append(f"SOC={reading.soc:.4f}")
    if reading.pv_w is not None:
        fields.append(f"PV={reading.pv_w:.1f}")
    fields.append(f"T={reading.uptime_s:.1f}")
    return fields


def parse_reading(args: tuple[str, ...] | list[str]) -> Reading:
    """A Reading from `KEY=value` arguments; FrameError on a missing or malformed field."""
    values: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise FrameError(f"reading field {arg!r} is not KEY=value")
        values[key] = value
    try:
        relays = values["RELAYS"]
        if not relays or set(relays) - {"0", "1"}:
            raise FrameError(f"RELAYS={relays!r} must be a string of 0 and 1")
        return Reading(
            voltage_v=float(values["V"]),
            current_a=float(values["I"]),
            power_w=float(values["P"]),
            wh_in=float(values["WHIN"]),
            wh_out=float(values["WHOUT"]),
            relays=tuple(c == "1" for c in relays),
            soc=float(values["SOC"]) if "SOC" in values else None,
            pv_w=float(values["PV"]) if "PV" in values else None,
            uptime_s=float(values.get("T", 0.0)),
        )
    except KeyError as err:
        raise FrameError(f"reading lacks field {err.args[0]}") from err
    except ValueError as err:
        if isinstance(err, FrameError):
            raise
        raise FrameError(f"reading has a non-numeric field: {err}") from err
