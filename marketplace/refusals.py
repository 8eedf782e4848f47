"""The contracts' custom errors as sentences a person reads, in ETH, Wh and times.

contracts.bindings.decode_revert gives "Name(arg, ...)"; that raw form stays in the logs, in
TxRecord.error and for the code that parses it (marketplace.audit). What people see (a refusal
before signing, a failed transaction in the wallet) is explain()'s sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from marketplace.contract_enums import EscrowMarket
from marketplace.units import energy, eth, price

_RAW = re.compile(r"(?P<name>[A-Z][A-Za-z0-9]+)\((?P<args>.*)\)")


def _market(value: str) -> str:
    try:
        return {EscrowMarket.LOTS: "the lot auctions'", EscrowMarket.COMMUNITY:
                "the community market's"}[EscrowMarket(int(value))] + " escrow"
    except (KeyError, ValueError):
        return f"market {value}"


def _time(value: str) -> str:
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return value


def _wei(value: str, rounding: str = "down") -> str:
    return eth(int(value), rounding) if value.isdigit() else value


def _wh(value: str) -> str:
    return energy(int(value)) if value.isdigit() else value


def _price(value: str) -> str:
    return price(int(value)) if value.isdigit() else value


Sentence = Callable[[list[str]], str]
# Every custom error of EnergyEscrow, EnergyToken and IntervalSettlement (contracts/src/*.sol);
# tests/marketplace/test_refusals.py fails when a contract gains one this does not name.
SENTENCES: dict[str, Sentence] = {
    "InsufficientBalance": lambda a: (f"you have {_wei(a[0])} free in the escrow; this needs "
                                      f"{_wei(a[1], 'up')}"),
    "ZeroAmount": lambda a: "the amount must be more than 0 ETH",
    "InvalidDeal": lambda a: ("the deal's terms do not hold: no energy, more than the offer or "
                              "the bid covers, a buyer who is the seller, or a cost of 0 ETH"),
    "InvalidOfferSignature": lambda a: (f"the offer is not signed by its seller {a[0]} (the "
                                        "signature is another key's, or the offer was altered)"),
    "InvalidBidSignature": lambda a: (f"the bid is not signed by its bidder {a[0]} (the "
                                      "signature is another key's, or the bid was altered)"),
    "BidNotForOffer": lambda a: "the bid names another listing's offer",
    "OfferExpired": lambda a: f"the offer's deadline ({_time(a[0])}) has passed",
    "OfferUsed": lambda a: "this offer has already opened a deal or was cancelled",
    "BidExpired": lambda a: f"the bid expired at {_time(a[0])}",
    "BidAlreadyUsed": lambda a: "this signed bid was used already: a bid opens at most one deal",
    "PriceBelowFloor": lambda a: (f"the bid of {_price(a[0])} is below the seller's start bid "
                                  f"of {_price(a[1])}"),
    "WrongMeter": lambda a: (f"meter {a[0]} is not the party's enrolled meter of the right kind "
                             "(or not this deal's)"),
    "InvalidReading": lambda a: f"a reading was not signed by meter {a[0]}",
    "ReadingOutOfTime": lambda a: (f"meter {a[0]}'s reading of {_time(a[1])} is in the future, "
                                   "outside the deal, or older than the last one used"),
    "MeterBusy": lambda a: (f"meter {a[0]} is delivering to another deal (chain deal {a[1]}): "
                            "a meter serves one deal at a time; close that one first"),
    "DealNotOpen": lambda a: f"the deal (chain deal {a[0]}) does not exist or is closed already",
    "DeliveryWentBackwards": lambda a: (f"the meter's count went back: {_wh(a[1])} is below the "
                                        f"{_wh(a[0])} this deal already counted"),
    "NotDealParty": lambda a: "only the deal's buyer or seller may do this",
    "NotAFault": lambda a: ("the operator may end a deal only on a fault (a meter offline, the "
                            "supply exhausted, meters that disagree)"),
    "NothingOwed": lambda a: "the escrow owes you nothing to pay out",
    "PoolShort": lambda a: (f"the settlement pool holds {_wei(a[0])}, less than the "
                            f"{_wei(a[1], 'up')} asked of it"),
    "TransferFailed": lambda a: f"sending {_wei(a[1])} to {a[0]} failed: it takes no Ether",
    "UnknownMarket": lambda a: f"there is no market {a[0]} (0: lot auctions, 1: community market)",
    "SameMarket": lambda a: f"a move must go to the other market, not {_market(a[0])} again",
    "NoWithdrawalPending": lambda a: (f"you have no withdrawal or move waiting in {_market(a[0])}"
                                      ": ask for one first"),
    "NoticeNotOver": lambda a: (f"the withdrawal's notice runs until {_time(a[0])}: complete it "
                                "then"),
    "InvalidEnrollment": lambda a: (f"meter {a[0]} cannot be enrolled so: it needs an owner, a "
                                    "kind and a rated power within the token's maximum"),
    "ConsentExpired": lambda a: (f"the owner's consent expired at {_time(a[0])}: ask for a new "
                                 "one"),
    "InvalidConsent": lambda a: f"the consent is not signed by the meter's owner {a[0]}",
    "MeterTaken": lambda a: (f"meter {a[0]} is bound to {a[1]}: that owner must release it "
                             "first"),
    "ConsentUsed": lambda a: ("this consent has enrolled the meter once already: a new "
                              "enrollment needs a new consent"),
    "NotMeterOwner": lambda a: f"only meter {a[0]}'s owner may release it",
    "MeterNotEnrolled": lambda a: f"meter {a[0]} is not enrolled",
    "LengthMismatch": lambda a: "the batch has a different number of items and signatures",
    "InvalidOperatorSignature": lambda a: f"the batch is not signed by an operator (but {a[0]})",
    "SettlementWindowNotOpen": lambda a: (f"only the operator settles until {_time(a[0])}; "
                                          "anyone may after that"),
    "NotOrderOwner": lambda a: "only the order's owner may cancel it",
    "OrderAlreadyCancelled": lambda a: "this order is cancelled already",
    "InvalidInterval": lambda a: "the interval's length must be more than 0 s",
    "InvalidLineLoss": lambda a: "the line loss must be below 100 %",
    # OpenZeppelin's, reached through the token (1 token unit = 1 Wh), AccessControl, EIP-712.
    "ERC20InsufficientBalance": lambda a: (f"{a[0]} holds {_wh(a[1])} of energy tokens; this "
                                           f"needs {_wh(a[2])}"),
    "ERC20InsufficientAllowance": lambda a: (f"the escrow may take {_wh(a[1])} of your energy "
                                             f"tokens; this needs {_wh(a[2])}: sign the approval"
                                             " again"),
    "ERC20InvalidApprover": lambda a: f"{a[0]} cannot approve energy tokens",
    "ERC20InvalidReceiver": lambda a: f"energy tokens cannot go to {a[0]}",
    "ERC20InvalidSender": lambda a: f"energy tokens cannot come from {a[0]}",
    "ERC20InvalidSpender": lambda a: f"{a[0]} cannot be allowed to spend energy tokens",
    "ERC2612ExpiredSignature": lambda a: (f"the signed approval (permit) expired at "
                                          f"{_time(a[0])}: sign a new one"),
    "ERC2612InvalidSigner": lambda a: (f"the signed approval (permit) is {a[0]}'s, not the "
                                       f"owner {a[1]}'s"),
    "InvalidAccountNonce": lambda a: (f"{a[0]}'s signed approval was used already or is out of "
                                      "order: sign a new one"),
    "AccessControlUnauthorizedAccount": lambda a: (f"{a[0]} lacks the role this needs (only the "
                                                   "admin or the operator may do it)"),
    "AccessControlBadConfirmation": lambda a: "an account may renounce only its own role",
    "ECDSAInvalidSignature": lambda a: "the signature is not valid",
    "ECDSAInvalidSignatureLength": lambda a: f"the signature has {a[0]} bytes, not 65",
    "ECDSAInvalidSignatureS": lambda a: "the signature is malformed (its s value is too high)",
    "ReentrancyGuardReentrantCall": lambda a: "the contract refuses a call back into itself",
    "SafeCastOverflowedUintDowncast": lambda a: f"the value {a[1]} is too large for the contract",
    "InvalidShortString": lambda a: "a name stored in the contract is malformed",
    "StringTooLong": lambda a: "a text is too long for the contract",
    "Panic": lambda a: f"the contract stopped on an internal error (panic code {a[0]})",
}
# Error(string): a require() message, its text already words (commas and all).
_WHOLE = {"Error": lambda text: f"the contract refused it: {text}"}


def explain(reason: str | None) -> str:
    """A revert reason ("Name(args)" or the node's words) as a sentence for a person."""
    if not reason:
        return "the contract refused it without saying why"
    raw = _RAW.fullmatch(reason.strip())
    if raw and raw["name"] in _WHOLE:
        return _WHOLE[raw["name"]](raw["args"])
    sentence = SENTENCES.get(raw["name"]) if raw else None
    if sentence is None:
        return f"the contract refused it: {reason}"
    args = [a.strip() for a in raw["args"].split(",")] if raw["args"] else []
    try:
        return sentence(args)
    except (IndexError, ValueError):  # "Name(?)": the arguments did not decode
        return sentence([raw["args"]] * 4)


def readable(error: str | None) -> str | None:
    """A transaction record's error for people: a contract's custom error (also one ending a
    longer message) as its sentence, anything else (the node's words) as it is."""
    if not error:
        return error
    name = re.search(r"(?:^|: )([A-Z][A-Za-z0-9]+\(.*\))$", error)
    raw = _RAW.fullmatch(name[1]) if name else None
    if name and raw and (raw["name"] in SENTENCES or raw["name"] in _WHOLE):
        return error[: name.start(1)].replace(" reverted: ", ": ") + explain(name[1])
    return error


def sentence(label: str, reason: str | None) -> str:
    """What a person reads when `label` (e.g. "Withdraw from escrow") is refused."""
    return f"{label}: {explain(reason)}"
