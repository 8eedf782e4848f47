"""Market errors: one base, each refusal a class of its own with a message a person can act on."""


class MarketError(Exception):
    """Base error of the marketplace package; its message is shown to the user."""

    status = 400


class InvalidInput(MarketError, ValueError):
    """A field is missing, malformed or out of range."""


class NotFound(MarketError, LookupError):
    """No listing, deal or account with that id."""

    status = 404


class NotAllowed(MarketError, PermissionError):
    """The account may not do this (someone else's deal, own listing, wrong role)."""

    status = 403


class AuctionClosed(MarketError):
    """The listing no longer takes bids."""

    status = 409


class BidTooLow(MarketError, ValueError):
    """The bid is below the start price or does not beat the highest bid by the increment."""


class InsufficientEscrow(MarketError, ValueError):
    """The buyer's free escrow balance does not cover the bid."""


class InsufficientTokens(MarketError, ValueError):
    """The seller's unlisted energy tokens do not cover the listing."""


class DealNotActive(MarketError):
    """The deal is not delivering energy (still opening, or already closed)."""

    status = 409


class ChainActionFailed(MarketError):
    """The chain refused or reverted an action; the message carries the reason."""

    status = 502


class WouldRevert(ChainActionFailed):
    """An action the contract would refuse, found by simulating it before anyone signs; the
    message is a sentence (marketplace.refusals), `reason` the contract's raw custom error."""

    status = 409

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ChainRefused(ChainActionFailed):
    """A transaction sent for a person (an admin's, say) that the contract refused (reverted):
    a 409 whose message is the refusal as a sentence, `reason` the raw custom error."""

    status = 409

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class CannotCancel(MarketError):
    """The listing can no longer be withdrawn (it has bids, or it is closed)."""

    status = 409


class StoreUnavailable(MarketError, ConnectionError):
    """The market's database cannot be reached or opened."""

    status = 503


class NodeRefused(MarketError):
    """A machine's node did not take its sealing toggle: its bridge's sentence (the quorum,
    toggles not allowed) or why the bridge did not answer."""

    status = 409
