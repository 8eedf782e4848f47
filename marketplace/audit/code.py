"""Whether the code at an address is gridbid's own build of a contract: the deployed runtime
code compared with the runtime inside a committed artifact's creation code, byte for byte
except the immutables the constructor fills in (PUSH32 slots that are zero in the build)."""

from __future__ import annotations

from contracts import EVM_VERSIONS, load_artifact

PUSH32 = 0x7F
_ZEROS = bytes(32)


def built_by_gridbid(code: bytes, name: str) -> bool:
    """Whether deployed runtime code is one of gridbid's artifact sets' build of `name`."""
    return any(same_code(code, runtime) for runtime in _runtimes(name, len(code)))


def _runtimes(name: str, size: int) -> list[bytes]:
    """The runtime code of size bytes inside each artifact set's creation code: the bytes that
    end with the build's metadata trailer (solc appends its CBOR length in the last 2)."""
    found = []
    for evm in EVM_VERSIONS:
        creation = bytes.fromhex(load_artifact(name, evm).bytecode.removeprefix("0x"))
        end = creation.rfind(b"\x00\x33") + 2  # solc's trailer ends with its length, 0x0033
        if size <= end:
            found.append(creation[end - size:end])
    return found


def same_code(deployed: bytes, reference: bytes) -> bool:
    """Equal but for immutables: each difference lies in a PUSH32 slot zero in the reference."""
    if len(deployed) != len(reference) or len(deployed) < 64:
        return False
    i = 0
    while i < len(deployed):
        if deployed[i] == reference[i]:
            i += 1
            continue
        slot = _immutable_slot(reference, i)
        if slot is None:
            return False
        i = slot + 32
    return True


def _immutable_slot(reference: bytes, i: int) -> int | None:
    """The start of the zeroed PUSH32 argument holding position i, or None."""
    for start in range(max(1, i - 31), i + 1):
        if reference[start - 1] == PUSH32 and reference[start:start + 32] == _ZEROS:
            return start
    return None
