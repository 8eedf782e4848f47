"""Bridge errors: one base, mixed with builtins where callers expect them."""


class BridgeError(Exception):
    """Base error of the firmware_bridge package."""


class FrameError(BridgeError, ValueError):
    """A line is not a valid protocol frame."""


class BoardTimeout(BridgeError, TimeoutError):
    """A board did not answer a request in time."""


class BoardError(BridgeError):
    """A board answered a request with ERR."""

    def __init__(self, code: int, text: str):
        self.code = code
        self.text = text
        super().__init__(f"board error {code}: {text}")
