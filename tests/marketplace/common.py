"""Helpers of the market tests that run on a started portal runtime: the lots market's demo
accounts, and the interval market's people, signed orders and boundaries passed."""

from __future__ import annotations

import time

from contracts.bindings import sign_buy_order, sign_sell_order
from gridbid_client.local import LocalParty, ether
from marketplace import signed
from marketplace.contract_enums import EscrowMarket
from tests.common import wait_for

ETH = 10**18


def unlocked(runtime):
    """The demo accounts as parties signing with their own keys (the tests' cheap keystores)."""
    return {a["name"]: LocalParty(runtime.market, runtime.wallets,
                                  runtime.keystore.unlock(a["address"], a["passphrase"]))
            for a in runtime.demo_accounts}


def ready(runtime, wh=60):
    """The demo accounts once alice holds `wh` energy tokens and bob and carol prepaid 0.1 ETH."""
    people = unlocked(runtime)
    wait_for(lambda: runtime.ledger.token_balance(people["alice"].address) >= wh, what="tokens")
    for name in ("bob", "carol"):
        runtime.ledger.wait(people[name].deposit(ETH // 10))
    return people


def active_deal(runtime, clock, people, wh: float = 300) -> dict:
    """alice sells carol wh Wh at her listing's price; the deal once active (delivering)."""
    market = runtime.market
    listing = people["alice"].list(wh, 1000, 30)
    people["carol"].bid(listing["id"], 1000)
    clock.advance(30)
    return wait_for(lambda: next((d for d in market.deals() if d["status"] == "active"), None),
                    what="the deal")


# -- the interval market -------------------------------------------------------------------

COMMUNITY = int(EscrowMarket.COMMUNITY)

# Two producers and three consumers on one emulated bus.
PEOPLE = [
    {"name": "alice", "role": "producer", "passphrase": "alice-demo", "board": "pv-alice"},
    {"name": "dave", "role": "producer", "passphrase": "dave-demo", "board": "pv-dave"},
    {"name": "bob", "role": "consumer", "passphrase": "bob-demo", "board": "load-bob"},
    {"name": "carol", "role": "consumer", "passphrase": "carol-demo", "board": "load-carol"},
    {"name": "erin", "role": "consumer", "passphrase": "erin-demo", "board": "load-erin"},
]


def keys(runtime) -> dict:
    """Each demo account's key, by name."""
    return {a["name"]: runtime.keystore.unlock(a["address"], a["passphrase"])
            for a in runtime.demo_accounts}


def sign_order(runtime, key, kind: str, **fields) -> dict:
    """The market's order terms for these fields, signed with key: what set_order takes."""
    market = runtime.market.intervals
    terms = market.order_terms(key.address, kind, fields)
    order = signed.parse_typed(terms["message"], terms["types"][terms["primaryType"]], kind)
    sign = sign_sell_order if kind == "sell" else sign_buy_order
    signature = sign(key, order, runtime.ledger.intervals.domain())
    return {"kind": kind, "order": terms["message"], "signature": "0x" + signature.hex()}


def place(runtime, key, kind: str, **fields) -> dict:
    """Sign and set a standing order."""
    made = sign_order(runtime, key, kind, **fields)
    return runtime.market.intervals.set_order(key.address, made["kind"], made["order"],
                                              made["signature"])


def drained(runtime, patience_s: float = 10.0) -> bool:
    """Wait (up to patience_s, real time) until every buyer of the interval under way has a
    signed reading counting what it bought: the boards draw at emulated speed while the
    market clock stands still. Whether they all did (a seller short of energy may not)."""
    market = runtime.market.intervals
    n = market.boundaries.index(market.clock.now())
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        owed = [f for f in market.istore.fills(n) if f["side"] == "buy"]
        if all(market.current_of(f["address"])["fill"]["metered_so_far_wh"] >= f["wh"]
               for f in owed):
            time.sleep(1.1)  # one more signed reading after the relay opened
            return True
        time.sleep(0.1)
    return False


def next_boundary(runtime, clock, step: bool = True) -> int:
    """Move the market clock to the next boundary; the interval market's step opens it (here
    when step, else the runtime's loop: waited for)."""
    market = runtime.market.intervals
    n = market.boundaries.index(clock.now()) + 1
    clock.advance(market.next_clearing_at() - clock.now() + 1e-3)
    if step:
        market.step()
    wait_for(lambda: (market.istore.interval(n) or {}).get("status") == "open",
             what=f"interval {n} cleared")
    return n


def settle(runtime, what: str = "a mined batch") -> list:
    """Step the market (settlement follows receipts) until a batch is mined; the mined ones."""
    market = runtime.market.intervals

    def mined():
        market.step()
        return [b for b in market.batches() if b["status"] == "mined"]

    return wait_for(mined, what=what)


def deposit(runtime, key, wei: int) -> None:
    """Escrow Ether into the community market, signed by its owner."""
    party = LocalParty(runtime.market, runtime.wallets, key)
    runtime.ledger.wait(party.submit(runtime.wallets.prepare_deposit(key.address, ether(wei),
                                                                     COMMUNITY)))


def produced(runtime, key, wh: int = 100) -> None:
    """Wait until a producer's meter signed wh of generation: energy it may offer."""
    switchboard = runtime.market.switchboard
    board = runtime.store.participant(key.address)["board_id"]
    wait_for(lambda: (switchboard.signed(board) or 0) and switchboard.signed(board).wh_in >= wh,
             what=f"{key.address}'s PV")


NIGHT_S = 240.0  # wall seconds a wait for generation may last: a 12 h night at 600x is 72 s,
# and a loaded machine (a clean clone beside other work: load 13) stretched one past 150 s


def generating(runtime, key, wh: int = 20) -> None:
    """Wait until a producer's meter signed wh more generation than it counts now: energy it
    has not sold yet at the next boundary (emulated time follows the wall clock, so on a
    loaded machine a test may reach the emulated night, where a panel has to wait for dawn)."""
    switchboard = runtime.market.switchboard
    board = runtime.store.participant(key.address)["board_id"]
    start = switchboard.signed(board).wh_in
    wait_for(lambda: switchboard.signed(board).wh_in >= start + wh, timeout=NIGHT_S,
             what=f"{key.address} generating {wh} Wh")


def relay_on(runtime, address: str) -> bool:
    """Whether the account's board has its relay closed (drawing or feeding)."""
    board = runtime.store.participant(address)["board_id"]
    return bool(runtime.board_router.reading(board).relays[0])


FLOORS = {"alice": 10**14, "dave": 2 * 10**14}  # the community's sell orders, wei per kWh
CAPS = {"bob": 6 * 10**14, "carol": 5 * 10**14, "erin": 4 * 10**14}  # its buy orders


def community(runtime, clock) -> dict:
    """PEOPLE switched to the interval market, consumers with 0.1 ETH there, the producers'
    sell orders at FLOORS and the consumers' buy orders at CAPS set; their keys by name."""
    people = keys(runtime)
    market = runtime.market.intervals
    for name in CAPS:
        deposit(runtime, people[name], ETH // 10)
    for name in FLOORS:
        produced(runtime, people[name])
    for key in people.values():
        market.set_mode(key.address, "intervals")
    next_boundary(runtime, clock)
    assert {market.mode_of(k.address) for k in people.values()} == {"intervals"}
    for name, floor in FLOORS.items():
        place(runtime, people[name], "sell", floor_wei_per_kwh=floor, reserve_wh=100)
    for name, cap in CAPS.items():
        place(runtime, people[name], "buy", cap_wei_per_kwh=cap, expected_wh=20)
    return people
