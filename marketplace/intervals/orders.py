"""Standing orders: the terms an owner signs (EIP-712), checked and stored; one active per owner."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any

from marketplace import rules, signed
from marketplace.clock import Clock
from marketplace.errors import InvalidInput, NotAllowed
from marketplace.intervals.boundaries import Boundaries
from marketplace.intervals.store import ACTIVE, CANCELLED, INTERVALS, IntervalStore
from marketplace.ledger import Ledger
from marketplace.parties import participant
from marketplace.settings import Settings

SELL, BUY = "sell", "buy"
KINDS = {SELL: ("producer", "seller", 1), BUY: ("consumer", "buyer", 2)}  # role, owner field, kind
MAX_WH = 2**64 - 1
MAX_VALID_S = 366 * 86_400  # an order signed for more than a year is refused


class StandingOrders:
    """Order terms, checks and storage of the interval market's standing orders."""

    def __init__(self, istore: IntervalStore, ledger: Ledger, clock: Clock,
                 settings: Settings, boundaries: Boundaries):
        self.istore = istore
        self.ledger = ledger
        self.clock = clock
        self.settings = settings
        self.boundaries = boundaries

    # -- what the owner signs --------------------------------------------------------------

    def terms(self, owner: str, kind: object, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The EIP-712 order an owner signs, from the page's fields (checked first)."""
        kind = _kind(kind)
        if not isinstance(fields, Mapping):
            raise InvalidInput("give the order's fields as an object")
        who = self._owner(owner, kind)
        get = fields.get
        order: dict[str, Any] = {KINDS[kind][1]: owner, "meter": who["meter_address"]}
        cap = rules.parse_int(get("max_wh_per_interval") or 0, "Wh per interval", 0, MAX_WH)
        if kind == SELL:
            order["floorWeiPerKWh"] = rules.parse_int(get("floor_wei_per_kwh"), "floor price"
                                                      " (wei per kWh)", 1, rules.MAX_WEI)
            order["maxWhPerInterval"] = cap
            order["reserveWh"] = self._reserve(get("reserve_wh"), get("reserve_soc"))
        else:
            order["capWeiPerKWh"] = rules.parse_int(get("cap_wei_per_kwh"), "price cap"
                                                    " (wei per kWh)", 1, rules.MAX_WEI)
            order["maxWhPerInterval"] = cap
            order["expectedWh"] = rules.parse_int(get("expected_wh"), "expected draw (Wh per"
                                                  " interval)", 1, MAX_WH)
            order["dailyBudgetWei"] = rules.parse_int(get("daily_budget_wei") or 0,
                                                      "daily budget (wei)", 0, rules.MAX_WEI)
        order["expiry"] = self._expiry(get("expiry"), get("valid_s"))
        # Milliseconds and a random tail: unused, however fast (or stopped) the clock is.
        order["nonce"] = int(self.clock.now() * 1000) * 1000 + secrets.randbelow(1000)
        return signed.page_terms(self._typed(kind, order))

    def parse(self, owner: str, kind: object, order: object,
              signature: object) -> tuple[str, dict[str, Any], bytes]:
        """A signed order as its owner sent it, every check passed: (kind, order, signature)."""
        kind = _kind(kind)
        who = self._owner(owner, kind)
        terms = signed.parse_typed(order, self._fields(kind), f"{kind} order")
        sig = signed.signature_bytes(signature)
        if signed.typed_signer(self._typed(kind, terms), sig, f"{kind} order") != owner:
            raise NotAllowed(f"the {kind} order is not signed by your key")
        if terms[KINDS[kind][1]] != owner:
            raise InvalidInput(f"the order's {KINDS[kind][1]} must be your address {owner}")
        if terms["meter"] != who["meter_address"]:
            raise InvalidInput(f"the order must name your meter {who['meter_address']}")
        self._check_enrolled(owner, kind, terms["meter"])
        price = terms["floorWeiPerKWh" if kind == SELL else "capWeiPerKWh"]
        if not 1 <= price <= rules.MAX_WEI:
            raise InvalidInput(f"the price must be 1 to {rules.MAX_WEI} wei per kWh")
        if kind == BUY and terms["expectedWh"] < 1:
            raise InvalidInput("the expected draw must be at least 1 Wh per interval")
        now = self.clock.now()
        if terms["expiry"] < self.boundaries.end(self.boundaries.index(now) + 1):
            raise InvalidInput("the order expires before the next interval ends; sign a later "
                               "expiry")
        if terms["expiry"] > now + MAX_VALID_S:
            raise InvalidInput("an order may run a year at most; sign an earlier expiry")
        return kind, terms, sig

    def store(self, owner: str, kind: str, terms: dict[str, Any], sig: bytes) -> dict[str, Any]:
        """Keep a checked order as the owner's active one (its old one is replaced)."""
        mode = self.istore.mode(owner)
        if mode["mode"] != INTERVALS and mode["requested"] != INTERVALS:
            raise NotAllowed("your account trades in the lot market: switch it to the interval"
                             " market (POST /api/market-mode) before setting a standing order")
        digest = "0x" + self.digest(kind, terms).hex()
        order_id = self.istore.add_order(owner, kind, signed.as_json(terms), "0x" + sig.hex(),
                                         digest, self.clock.now())
        if order_id is None:
            raise InvalidInput("this signed order was already placed; sign a new one")
        return self.view(self.istore.order(order_id))

    def cancel(self, owner: str) -> dict[str, Any]:
        """End the owner's active order off-chain at once (NotFound-like InvalidInput if none)."""
        row = self.istore.active_order(owner)
        if row is None:
            raise InvalidInput("you have no active standing order to cancel")
        self.istore.set_order_status(row["id"], CANCELLED)
        return self.view({**row, "status": CANCELLED})

    def digest(self, kind: str, terms: dict[str, Any]) -> bytes:
        """An order's EIP-712 hash in the IntervalSettlement domain (what cancelOrder names)."""
        from contracts.bindings import order_hash

        return order_hash(kind, terms, self.ledger.intervals.domain())

    # -- reading them back -----------------------------------------------------------------

    def typed_order(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A stored order's fields as the contract takes them (ints, addresses)."""
        return signed.parse_typed(row["order"], self._fields(row["kind"]),
                                  f"{row['kind']} order")

    def usable(self, row: Mapping[str, Any], n: int) -> bool:
        """Whether an active order may trade in interval n (it does not expire before n ends)."""
        return row["status"] == ACTIVE and int(row["order"]["expiry"]) >= self.boundaries.end(n)

    @staticmethod
    def view(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """An order as the pages show it (numbers as decimal strings, as signed)."""
        if row is None:
            return None
        return {"id": row["id"], "kind": row["kind"], "status": row["status"],
                "hash": row["hash"], "order": row["order"], "signature": row["signature"],
                "created_at": row["created_at"]}

    # -- internals -------------------------------------------------------------------------

    def _typed(self, kind: str, order: dict[str, Any]) -> dict[str, Any]:
        from contracts.bindings import order_typed_data

        return order_typed_data(kind, order, self.ledger.intervals.domain())

    @staticmethod
    def _fields(kind: str) -> list[dict[str, str]]:
        from contracts.bindings import ORDER_TYPES

        return ORDER_TYPES[kind][_primary(kind)]

    def _owner(self, owner: str, kind: str) -> dict[str, Any]:
        who = participant(self.istore.db, owner)
        role = KINDS[kind][0]
        if who["role"] != role:
            raise NotAllowed(f"only {role}s can set a {kind} order")
        if who["board_id"] is None or who["meter_address"] is None:
            raise NotAllowed("no meter board measures your account yet; the operator enrolls "
                             "one")
        return who

    def _check_enrolled(self, owner: str, kind: str, meter: str) -> None:
        entry = self.ledger.meter_of(meter)
        if entry["owner"] != owner or int(entry["kind"]) != KINDS[kind][2]:
            raise NotAllowed(f"meter {meter} is not enrolled to you as a "
                             f"{KINDS[kind][0]}'s meter")

    def _reserve(self, wh: object, soc: object) -> int:
        if wh not in (None, ""):
            return rules.parse_int(wh, "battery reserve (Wh)", 0, MAX_WH)
        if soc in (None, ""):
            return 0
        try:
            share = float(soc)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            share = math.nan
        if not 0.0 <= share <= 1.0:
            raise InvalidInput("the battery reserve as a state of charge is 0 to 1")
        return round(share * self.settings.battery_wh)

    def _expiry(self, expiry: object, valid_s: object) -> int:
        now = self.clock.now()
        if expiry not in (None, ""):
            return rules.parse_int(expiry, "expiry (unix seconds)", int(now), int(now) +
                                   MAX_VALID_S)
        seconds = rules.parse_int(valid_s or 30 * 86_400, "validity (s)",
                                  math.ceil(2 * self.boundaries.length), MAX_VALID_S)
        return int(now) + seconds


def _kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidInput("an order's kind is 'sell' or 'buy'")
    return str(kind)


def _primary(kind: str) -> str:
    return "SellOrder" if kind == SELL else "BuyOrder"
