"""Constants and helpers of the bridge tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from firmware_bridge.protocol import Frame, checksum, decode, decode_legacy, encode, parse_hello

# Short protocol timers keep the suite fast; physics runs 600x so energy moves visibly.
FAILSAFE_S = 0.5
REPORT_S = 0.1


def raw_reply(port, line: bytes, session: str | None = None):
    """Write a raw line to a pyserial port; the next reply frame, skipping unsolicited ones.

    The reply must check under `session` (None: a HELLO's reply, or a board with no
    session), so a test also sees that the board keys what it sends."""
    port.write(line)
    while True:
        received = port.readline()
        assert received.endswith(b"\n"), f"no reply to {line!r}"
        if not received.startswith(b"!"):
            return decode(received, session)


def raw_hello(port, req_id: int = 1) -> str:
    """HELLO over a raw port; the session it opened (its READING is left to skip)."""
    reply = raw_reply(port, encode(">", req_id, "HELLO"))
    assert reply.verb == "OK" and reply.args[0] == "HELLO", reply
    return parse_hello(reply.args[1:]).session


def with_crc(body: str, session: str = "") -> bytes:
    """A line with a correct CRC, whatever its body (encode() refuses bad frames)."""
    return f"{body}*{checksum(body, session)}\n".encode("ascii")


def wrong_crc(line: bytes) -> bytes:
    """The same line with a CRC that does not match."""
    return line[:-5] + b"%04X\n" % (int(line[-5:-1], 16) ^ 0x5A5A)


def decode_reply(raw: bytes, session: str | None) -> tuple[Frame, str]:
    """A reply and how it is keyed: "session", "none" (a HELLO's, or no session) or "v1"."""
    for key, how in ((session, "session"), (None, "none"))[0 if session else 1:]:
        try:
            return decode(raw, key), how
        except ValueError:
            continue
    return decode_legacy(raw), "v1"


def opened(frame: Frame, how: str, session: str | None) -> str | None:
    """The session after this reply: a v2 OK HELLO opens a new one."""
    if how == "none" and frame.verb == "OK" and frame.args[:2] == ("HELLO", "2"):
        return parse_hello(frame.args[1:]).session
    return session


def masked(frame: Frame) -> Frame:
    """The frame with its session id hidden: the one thing boards must not agree on."""
    return Frame(frame.kind, frame.req_id, frame.verb,
                 tuple("SESSION=*" if a.startswith("SESSION=") else a for a in frame.args))
