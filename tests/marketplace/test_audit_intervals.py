"""The interval market's audit on hand-made published intervals (no chain, no portal): an
honest interval agrees; a tampered price, a bid over its order's cap, a forged reading, a
payout that does not follow the readings are one finding each."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from eth_account import Account

from contracts.bindings import order_hash, sign_buy_order, sign_sell_order
from firmware_bridge.signing import ReadingDomain, sign_reading
from marketplace.audit.events import Event
from marketplace.audit.intervals import Domains, check_intervals
from marketplace.audit.published import IntervalError, parse_intervals
from marketplace.audit.report import Report, audit_intervals
from marketplace.clearing import Bid, Offer, clear
from marketplace.interval_accounts import account

CHAIN, TOKEN, SETTLEMENT = 1337, "0x" + "11" * 20, "0x" + "33" * 20
DOMAINS = Domains(CHAIN, SETTLEMENT, TOKEN)
ORDER_DOMAIN = DOMAINS.order()
START = 1_800_000_000  # interval 0's start, unix seconds; 900 s per interval


@dataclass(eq=False)
class Party:
    """A participant: its key, its meter's key and its signed standing order."""

    kind: str
    key: object
    meter: object
    order: dict

    @property
    def address(self) -> str:
        return self.key.address

    def signed(self) -> dict:
        sign = sign_sell_order if self.kind == "sell" else sign_buy_order
        return {"kind": self.kind, "order": {k: str(v) for k, v in self.order.items()},
                "signature": "0x" + sign(self.key, self.order, ORDER_DOMAIN).hex()}


def seller(floor, max_wh=0):
    key, meter = Account.create(), Account.create()
    return Party("sell", key, meter, {
        "seller": key.address, "meter": meter.address, "floorWeiPerKWh": floor,
        "maxWhPerInterval": max_wh, "reserveWh": 100, "expiry": START + 86400, "nonce": 1})


def buyer(cap, max_wh=0):
    key, meter = Account.create(), Account.create()
    return Party("buy", key, meter, {
        "buyer": key.address, "meter": meter.address, "capWeiPerKWh": cap,
        "maxWhPerInterval": max_wh, "expectedWh": 200, "dailyBudgetWei": 0,
        "expiry": START + 86400, "nonce": 2})


GWEI = 10**9
ALICE, BEN = seller(100 * GWEI), seller(200 * GWEI)
CAROL, DAN = buyer(400 * GWEI, max_wh=300), buyer(300 * GWEI)
PARTIES = (ALICE, BEN, CAROL, DAN)


def reading(party, wh, at):
    """A reading of party's meter: wh counted in (buyer) or out (seller) since the start."""
    wh_in, wh_out = (5000 + wh, 70) if party.kind == "buy" else (30, 9000 + wh)
    return sign_reading(party.meter, ReadingDomain(CHAIN, TOKEN), wh_in, wh_out, at).to_json()


OFFERS = ((ALICE, 300), (BEN, 200))
BIDS = ((CAROL, 250), (DAN, 200))
METERED = {ALICE: 290, BEN: 150, CAROL: 250, DAN: 180}


def publish(n=0, offers=OFFERS, bids=BIDS, metered=None, pricing="clear"):
    """Interval n as an honest portal publishes it: cleared and accounted by the market's own
    functions (test_the_figures_are_the_rules pins what they give)."""
    metered = metered or METERED
    start = START + 900 * n
    limit = {p: p.order["floorWeiPerKWh" if p.kind == "sell" else "capWeiPerKWh"]
             for p in PARTIES}
    clearing = clear([Offer(p.address, wh, limit[p]) for p, wh in offers],
                     [Bid(p.address, wh, limit[p]) for p, wh in bids], pricing)
    books = account(clearing.fills, {p.address: metered[p] for p, _ in bids},
                    {p.address: metered[p] for p, _ in offers}, pricing)
    by_address = {p.address: p for p in PARTIES}
    fills = []
    for side, traded, money in (("sell", clearing.sold, books.payout_wei),
                                ("buy", clearing.bought, books.paid_wei)):
        for address, wh in traded.items():
            mine = [f for f in clearing.fills if address in (f.seller, f.buyer)]
            fills.append({"address": address, "side": side, "wh": wh,
                          "price_wei": str(sum(f.price * f.wh for f in mine) // wh),
                          "metered_wh": metered[by_address[address]],
                          "billed_wh": (books.burned_wh if side == "sell" else
                                        books.billed_wh)[address],
                          "paid_wei": str(money[address])})
    return {
        "n": n, "start": start, "end": start + 900, "emulated_start": 900 * n,
        "status": "accounted", "pricing": pricing,
        "price_wei": None if clearing.price is None else str(clearing.price),
        "offers": [{"seller": p.address, "wh": wh, "floor": str(limit[p])} for p, wh in offers],
        "bids": [{"buyer": p.address, "wh": wh, "cap": str(limit[p])} for p, wh in bids],
        "orders": [p.signed() for p in PARTIES], "fills": fills,
        "readings": {"start": [reading(p, 0, start + 1) for p in PARTIES],
                     "end": [reading(p, metered[p], start + 901) for p in PARTIES]},
    }


def fill_of(published, party):
    return next(f for f in published["fills"] if f["address"] == party.address)


def test_the_figures_are_the_rules():
    """Worked by hand: 450 Wh trade (alice's 300 and 150 of ben's); ben is left with 50 Wh at
    his floor, so the price is his floor (200). Buyers pay for what their meters counted;
    sellers share that by what they sent up to what they sold."""
    published = publish()
    assert published["price_wei"] == str(200 * GWEI)
    wh = {f["address"]: f["wh"] for f in published["fills"]}
    assert wh == {ALICE.address: 300, BEN.address: 150, CAROL.address: 250, DAN.address: 200}
    assert int(fill_of(published, CAROL)["paid_wei"]) == 250 * 200 * GWEI // 1000
    assert int(fill_of(published, DAN)["paid_wei"]) == 180 * 200 * GWEI // 1000
    total = 430 * 200 * GWEI // 1000
    assert int(fill_of(published, ALICE)["paid_wei"]) in (total * 290 // 440,
                                                            total * 290 // 440 + 1)
    assert int(fill_of(published, ALICE)["paid_wei"]) + int(
        fill_of(published, BEN)["paid_wei"]) == total


def findings(*published):
    found, _ = check_intervals(parse_intervals(list(published)), DOMAINS)
    return [str(f) for f in found]


def test_an_honest_interval_agrees_and_says_what_each_owes():
    found, owed = check_intervals(parse_intervals([publish(0), publish(1)]), DOMAINS)
    assert found == []
    settled = owed[1]
    assert settled.derived and settled.owed[CAROL.address, "buy"] == (250, 50 * GWEI)
    assert settled.owed[DAN.address, "buy"] == (180, 36 * GWEI)
    assert settled.owed[ALICE.address, "sell"][0] == 290  # burned: what its meter sent
    assert settled.owed[BEN.address, "sell"][0] == 150


def test_a_tampered_price_is_one_finding():
    published = publish()
    published["price_wei"] = str(260 * GWEI)
    [line] = findings(published)
    assert line.startswith("interval: interval 0: published price 260000000000 wei/kWh")


def test_a_fill_over_its_orders_cap_is_one_finding():
    # The operator bid 320 Wh for carol, whose order allows 300 per interval, and cleared it
    # consistently: the clearing agrees, the bid does not agree with carol's order.
    published = publish(bids=((CAROL, 320), (DAN, 200)))
    assert fill_of(published, CAROL)["wh"] == 320
    [line] = findings(published)
    assert line == (f"order: interval 0 bid of {CAROL.address[:8]}…{CAROL.address[-4:]}: "
                    "320 Wh is above the order's 300 Wh per interval")


def test_a_bid_above_what_its_order_bids_after_the_last_interval():
    # Dan's order expects 200 Wh and he drew 180 in interval 0: 250 Wh in interval 1 is
    # neither; a bid with no interval before it is not judged.
    [line] = findings(publish(0), publish(1, bids=((CAROL, 250), (DAN, 250))))
    assert line.startswith(f"order: interval 1 bid of {DAN.address[:8]}")
    assert line.endswith("250 Wh is more than its order bids after interval 0 (at most 200 Wh)")
    assert findings(publish(1, bids=((CAROL, 250), (DAN, 250)))) == []


def test_a_buyer_paying_past_its_daily_budget(monkeypatch):
    # Carol's order allows 60 gwei a day; she pays 50 gwei an interval. After interval 0 her
    # budget has 10 gwei left: 25 Wh at her cap of 400 gwei/kWh, not the 250 Wh bid for her.
    monkeypatch.setattr(CAROL, "order", {**CAROL.order, "dailyBudgetWei": 60 * GWEI})
    bid, paid = findings(publish(0), publish(1))
    prefix = f"order: interval 1 bid of {CAROL.address[:8]}"
    assert bid.startswith(prefix) and bid.endswith("(at most 25 Wh)")
    assert paid.startswith(f"order: interval 1 buyer {CAROL.address[:8]}")
    assert paid.endswith(f"pays {100 * GWEI} wei on day 0, over its daily budget of {60 * GWEI}")
    # The next day starts afresh: the whole 60 gwei buy 150 Wh at her cap, nothing is over.
    [bid] = findings(publish(0), {**publish(1), "emulated_start": 86400})
    assert bid.startswith(prefix) and bid.endswith("(at most 150 Wh)")


def test_an_open_interval_is_cleared_not_accounted():
    published = publish()
    published["status"] = "open"
    for fill in published["fills"]:
        fill.update(metered_wh=0, billed_wh=0, paid_wei=None)
    published["readings"]["end"] = []
    found, owed = check_intervals(parse_intervals([published]), DOMAINS)
    assert found == [] and owed == {}
    published["price_wei"] = "1"
    assert [f.kind for f in check_intervals(parse_intervals([published]), DOMAINS)[0]] == [
        "interval"]


def test_a_forged_reading_is_one_finding():
    published = publish()
    end = published["readings"]["end"]
    forged = next(r for r in end if r["meter"] == DAN.meter.address)
    forged["whIn"] += 20  # dan's meter counted 200, not 180: a reading its key did not sign
    fill_of(published, DAN).update(metered_wh=200, paid_wei=str(40 * GWEI))
    [line] = findings(published)
    assert line.startswith("reading: interval 0 end reading of meter ")
    assert line.endswith("not signed by the meter (altered or forged)")


def test_a_payout_that_does_not_follow_the_readings_is_one_finding():
    published = publish()
    ben = fill_of(published, BEN)
    ben["paid_wei"] = str(int(ben["paid_wei"]) + 5 * GWEI)
    [line] = findings(published)
    assert "seller" in line and line.endswith(
        f"received {int(ben['paid_wei'])} wei; the clearing and the readings make "
        f"{int(ben['paid_wei']) - 5 * GWEI} wei")


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["orders"][0]["order"].update(floorWeiPerKWh="1"),
     "order: interval 0 offer of {alice}: its order is not signed by its owner"),
    (lambda p: p["offers"][1].update(floor=str(150 * GWEI)),
     "order: interval 0 offer of {ben}: floor 150000000000 wei/kWh, the signed order's is"),
    (lambda p: p.update(start=START + 2 * 86400, end=START + 2 * 86400 + 900),
     "order: interval 0 offer of {alice}: the order expired at"),
    (lambda p: p["readings"]["end"].pop(),
     "reading: interval 0 buyer {dan}: no signed start and end readings of its meter"),
    (lambda p: fill_of(p, BEN).update(billed_wh=151),
     "interval: interval 0 seller {ben}: published 151 Wh burned; the clearing and the "
     "readings make 150 Wh"),
    (lambda p: fill_of(p, DAN).update(metered_wh=199),
     "interval: interval 0 buyer {dan}: published 199 Wh metered; its meter's signed "
     "readings count 180 Wh"),
    (lambda p: p["fills"].remove(fill_of(p, DAN)),
     "interval: interval 0 buyer {dan}: published 0 Wh buy; the clearing gives 200 Wh"),
])
def test_each_other_departure_is_named(change, expected):
    published = publish()
    change(published)
    names = {k: f"{p.address[:8]}…{p.address[-4:]}" for k, p in
             (("alice", ALICE), ("ben", BEN), ("dan", DAN))}
    found = findings(published)
    assert any(line.startswith(expected.format(**names)) for line in found), found


def test_pay_as_bid_is_rederived_at_each_buyers_cap():
    assert findings(publish(pricing="bid")) == []
    published = publish(pricing="bid")
    published["pricing"] = "clear"  # published as if pay-as-clear
    found = findings(published)
    assert any("published price" in line for line in found)
    assert any("buyer" in line and "published at" in line for line in found)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(n="x"), "interval n 'x' is not an integer"),
    (lambda p: p.update(pricing="auction"), "pricing 'auction' is not 'clear' or 'bid'"),
    (lambda p: p["fills"][0].update(side="both"), "fill 0 is not an object with side"),
    (lambda p: p["orders"][1]["order"].update(seller="nobody"), "order 1 seller 'nobody'"),
    (lambda p: p["readings"]["end"][0].update(whIn=-1), "end readings: signed reading: whIn"),
    (lambda p: p["offers"].append(7), "offer is not an object"),
])
def test_a_malformed_interval_is_refused_with_a_reason(change, message):
    published = copy.deepcopy(publish())
    change(published)
    with pytest.raises(IntervalError, match=message):
        parse_intervals([published])
    with pytest.raises(IntervalError, match="interval 0 is published twice"):
        parse_intervals([publish(), publish()])


# -- settled positions against the published intervals ---------------------------------------

def position(party, first, through, wh, wei, meter_wh, block=10):
    side = 1 if party.kind == "buy" else 2
    return Event("PositionSettled", {"account": party.address, "side": side,
                                     "fromInterval": first, "toInterval": through, "wh": wh,
                                     "amountWei": wei, "meterWh": meter_wh},
                 block, 0, START + 3000, "0x" + "ab" * 32)


def audited(events, *published):
    base = Report(0, 0, 0, ())
    return audit_intervals(base, parse_intervals(list(published)), events, DOMAINS)


def test_a_settled_position_is_its_fills_over_its_intervals():
    two = [publish(0), publish(1)]
    carol = sum(int(fill_of(p, CAROL)["paid_wei"]) for p in two)
    ben = sum(int(fill_of(p, BEN)["paid_wei"]) for p in two)
    # The readings restart each interval in this test: interval 1's end counter is 5000 + 250.
    honest_events = [position(CAROL, 0, 1, 500, carol, 5250), position(BEN, 0, 1, 300, ben, 9150)]
    report = audited(honest_events, *two)
    assert report.findings == () and (report.intervals, report.positions) == (2, 2)
    assert report.summary() == "0 auctions, 0 mints, 0 deliveries, 2 intervals, 2 positions agree"

    cases = [
        (position(CAROL, 0, 1, 500, carol + 1, 5250),
         f"settled 500 Wh for {carol + 1} wei; its published fills make 500 Wh for {carol} wei"),
        (position(BEN, 0, 1, 310, ben, 9150), "settled 310 Wh"),
        (position(CAROL, 0, 1, 500, carol, 5300), "settled its meter to 5300 Wh; its signed "
                                                  "reading at interval 1's end says 5250"),
        (position(CAROL, 1, 1, 250, carol // 2, 5250), "interval 0's fill was never settled"),
        (position(CAROL, 0, 2, 500, carol, 5250), "interval 2 is not published"),
        (position(CAROL, 0, 10**9, 500, carol, 5250), "is not a range of intervals"),
    ]
    for event, message in cases:
        [finding] = audited([event], *two).findings
        assert finding.kind == "batch" and message in finding.message, (finding, message)


def test_an_order_used_after_its_owner_cancelled_it():
    cancel = Event("OrderCancelled", {"order": order_hash("buy", DAN.order, ORDER_DOMAIN),
                                      "owner": DAN.address}, 3, 0, START + 600, "0x" + "cd" * 32)
    report = audited([cancel], publish(0), publish(1))
    [finding] = report.findings
    assert str(finding).startswith(f"order: interval 1 buy order of {DAN.address[:8]}")
    assert "used after its owner cancelled it" in finding.message
