"""Bridge errors: one base, mixed with builtins where callers expect them."""

# Error codes of protocol v2 (docs/PROTOCOL.md); FrameError and BoardError carry them.
ERR_CHECKSUM, ERR_VERB, ERR_ARG, ERR_FRAME, ERR_REPLAY, ERR_SESSION = 1, 2, 3, 4, 5, 6
ERR_STORAGE = 7  # CONFIG could not be saved: nothing changed


class BridgeError(Exception):
    """Base error of the firmware_bridge package."""


class FrameError(BridgeError, ValueError):
    """A line is not a valid protocol frame; `code` is the ERR code a board answers it with."""

    def __init__(self, message: str, code: int = ERR_FRAME):
        super().__init__(message)
        self.code = code


class BoardTimeout(BridgeError, TimeoutError):
    """A board did not answer a request in time."""


class BoardError(BridgeError):
    """A board answered a request with ERR <code> <text>."""

    def __init__(self, code: int, text: str):
        super().__init__(f"board error {code}: {text}")
        self.code = code
        self.text = text


class MeterFault(BridgeError):
    """A board's meter gave no (or a garbled) answer: raised by an emulated meter's read."""


class MeterUnavailable(FrameError):
    """A reading with no meter values: the board's meter has not answered since it booted
    (METER=WAIT) or is dead from boot (METER=FAULT); `state` says which."""

    def __init__(self, state: str):
        super().__init__(f"reading has no meter values (METER={state})", ERR_ARG)
        self.state = state
