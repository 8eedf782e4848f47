"""Where a board is, as one URI: an emulated board, a serial port, a TCP port, or a PZEM-017.

| URI | board |
|---|---|
| `emulator://pv-alice?kind=producer&pv_peak_w=400` | emulated by the bridge process itself |
| `/dev/ttyUSB0`, `/dev/serial/by-id/…` | a gridbid board on a serial port |
| `socket://host:port`, `loop://`, `rfc2217://…` | a gridbid board over pyserial's URL handlers |
| `pzem:///dev/ttyUSB1?unit=1&id=pv-bob&kind=producer` | a PZEM-017 over Modbus RTU (meter only) |

parse_board_uri is the one place a URI is read; a bad one is a BoardURIError saying what to
write instead, before any port is opened.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from firmware_bridge.claims import KINDS
from firmware_bridge.errors import BridgeError

SKIES = ("clear", "clouds")
PYSERIAL_SCHEMES = ("socket", "loop", "rfc2217", "spy", "alt", "hwgrep")
BOARD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EXAMPLES = ("emulator://pv-1?kind=producer, /dev/ttyUSB0, socket://127.0.0.1:7000, "
            "pzem:///dev/ttyUSB1?unit=1&id=load-1&kind=consumer")

# What each emulator:// option is, and the bounds it must keep.
_EMULATOR_NUMBERS = {"pv_peak_w": (0.0, 100_000.0), "load_w": (0.0, 100_000.0),
                     "soc": (0.0, 1.0), "battery_wh": (1.0, 1_000_000.0),
                     "speed": (1.0, 10_000.0), "start_hour": (0.0, 24.0)}
_EMULATOR_OPTIONS = {"kind", "sky", *_EMULATOR_NUMBERS}
_PZEM_OPTIONS = {"unit", "id", "kind", "counts", "baud", "timeout"}


class BoardURIError(BridgeError, ValueError):
    """A board URI that names no board this bridge can open; the message says why."""


@dataclass(frozen=True)
class BoardURI:
    """A parsed board URI: its scheme and what it says (the raw text kept for messages)."""

    text: str
    scheme: str  # "emulator", "serial" (a device path or pyserial URL) or "pzem"
    target: str = ""  # emulator: the board id; serial: what pyserial opens; pzem: the device
    options: dict[str, object] = field(default_factory=dict)

    @property
    def board_id(self) -> str | None:
        """The board's id when the URI says it (emulator, pzem); a serial board says it in HELLO."""
        if self.scheme == "emulator":
            return self.target
        return self.options.get("id") if self.scheme == "pzem" else None  # type: ignore[return-value]

    def __str__(self) -> str:
        return self.text


def parse_board_uri(text: object) -> BoardURI:
    """Read one board URI; BoardURIError if it is not one (see the module's table)."""
    if not isinstance(text, str) or not text.strip():
        raise BoardURIError(f"a board URI is a non-empty string, e.g. {EXAMPLES}")
    text = text.strip()
    scheme, sep, _rest = text.partition("://")
    if not sep:  # a device path (absolute, or relative as a data directory's links are)
        return BoardURI(text, "serial", text)
    scheme = scheme.lower()
    if scheme == "emulator":
        return _emulator(text)
    if scheme == "pzem":
        return _pzem(text)
    if scheme in PYSERIAL_SCHEMES:
        return BoardURI(text, "serial", text)
    raise BoardURIError(f"board {text!r}: unknown scheme {scheme}://; use emulator://, a device "
                        f"path, pzem:// or one of pyserial's {', '.join(PYSERIAL_SCHEMES)}://")


def _query(text: str, query: str, allowed: set[str]) -> dict[str, str]:
    """The URI's query as a dict; a repeated or unknown option is refused."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise BoardURIError(f"board {text!r}: unknown option {key!r} "
                                f"(known: {', '.join(sorted(allowed))})")
        if key in options:
            raise BoardURIError(f"board {text!r}: option {key!r} given twice")
        options[key] = value
    return options


def _number(text: str, key: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BoardURIError(f"board {text!r}: {key}={value!r} is not a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise BoardURIError(f"board {text!r}: {key}={value} is not within {low:g}..{high:g}")
    return number


def _board_id(text: str, value: str) -> str:
    if not BOARD_ID.match(value):
        raise BoardURIError(f"board {text!r}: id {value!r} is 1-64 letters, digits, '.', '_' or"
                            " '-', starting with a letter or digit")
    return value


def _kind(text: str, value: str | None, default: str | None) -> str:
    kind = value if value is not None else default
    if kind not in KINDS:
        raise BoardURIError(f"board {text!r}: kind is producer or consumer")
    return kind


def _emulator(text: str) -> BoardURI:
    """emulator://<id>?kind=producer|consumer&pv_peak_w=&load_w=&soc=&sky=&speed=&start_hour="""
    parts = urlsplit(text)
    if parts.path not in ("", "/") or parts.fragment:
        raise BoardURIError(f"board {text!r}: write emulator://<board id>?kind=… (no path)")
    board_id = _board_id(text, parts.netloc)
    raw = _query(text, parts.query, _EMULATOR_OPTIONS)
    options: dict[str, object] = {"kind": _kind(text, raw.pop("kind", None), None)}
    sky = raw.pop("sky", "clear")
    if sky not in SKIES:
        raise BoardURIError(f"board {text!r}: sky is clear or clouds")
    options["sky"] = sky
    for key, value in raw.items():
        options[key] = _number(text, key, value, *_EMULATOR_NUMBERS[key])
    producer_only = {"pv_peak_w", "soc", "battery_wh", "sky"} & set(raw)
    if options["kind"] == "consumer" and producer_only:
        raise BoardURIError(f"board {text!r}: {', '.join(sorted(producer_only))} is for producers")
    if options["kind"] == "producer" and "load_w" in raw:
        raise BoardURIError(f"board {text!r}: load_w is for consumers")
    return BoardURI(text, "emulator", board_id, options)


def _pzem(text: str) -> BoardURI:
    """pzem:///dev/ttyUSB1?unit=1&id=<board id>&kind=consumer&counts=in|out&baud=9600"""
    parts = urlsplit(text)
    if parts.netloc or not parts.path.startswith("/"):
        raise BoardURIError(f"board {text!r}: write pzem:///dev/<port> (three slashes: no host)")
    raw = _query(text, parts.query, _PZEM_OPTIONS)
    unit = raw.get("unit", "1")
    if not unit.isdigit() or not (1 <= int(unit) <= 247 or int(unit) == 0xF8):
        raise BoardURIError(f"board {text!r}: unit {unit!r} is a Modbus address 1..247 (or 248,"
                            " the general address, for a bus with one meter)")
    kind = _kind(text, raw.get("kind"), "consumer")
    # The PZEM-017 counts one direction: into the battery or load (in) or out to the bus.
    counts = raw.get("counts", "in")
    if counts not in ("in", "out"):
        raise BoardURIError(f"board {text!r}: counts is in or out")
    device = parts.path
    default_id = f"pzem-{device.rstrip('/').rsplit('/', 1)[-1]}-{int(unit)}"
    options: dict[str, object] = {
        "unit": int(unit), "kind": kind, "counts": counts,
        "id": _board_id(text, raw.get("id", default_id)),
        "baud": int(_number(text, "baud", raw.get("baud", "9600"), 1200, 115200)),
        "timeout": _number(text, "timeout", raw.get("timeout", "1"), 0.05, 10.0),
    }
    return BoardURI(text, "pzem", device, options)
