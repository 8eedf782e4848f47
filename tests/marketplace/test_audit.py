"""`gridbid verify`'s pure checks on hand-built event lists: balances replayed, the winner,
mint allowances, signed delivery readings and the bus (no chain, no portal)."""

from __future__ import annotations

import itertools

import pytest
from eth_account import Account

from contracts.bindings import offer_hash, reading_tuple, sign_bid, sign_offer
from firmware_bridge.signing import ReadingDomain, sign_reading
from marketplace.audit import events as facts
from marketplace.audit.book import BookError, parse_book
from marketplace.audit.events import Event
from marketplace.audit.findings import Call
from marketplace.audit.report import audit
from marketplace.contract_enums import MeterKind

CHAIN, TOKEN, ESCROW = 1337, "0x" + "11" * 20, "0x" + "22" * 20
ETH = 10**18
_index = itertools.count()

seller, seller_meter = Account.create(), Account.create()
rich, poor, late = Account.create(), Account.create(), Account.create()
buyer_meter = Account.create()


def ev(name: str, block: int, tx: str = "", **args) -> Event:
    """An event in block `block`, stamped 100 s per block, in the order events are made."""
    return Event(name, args, block, next(_index), 1_000_000 + 100 * block, tx or f"0x{block:064x}")


def deposit(who, wei, block):
    return ev("Deposited", block, buyer=who.address, market=0, amount=wei)


# -- balances ------------------------------------------------------------------------------

def test_balances_follow_deposits_requests_moves_deals_and_refunds():
    b = rich.address
    log = [deposit(rich, 10 * ETH, 1),
           ev("WithdrawalRequested", 2, buyer=b, market=0, amount=4 * ETH, availableAt=0,
              toMarket=255),
           ev("DealOpened", 3, dealId=1, buyer=b, priceWeiPerKWh=ETH, energyWh=2000),
           ev("Withdrawn", 4, buyer=b, market=0, amount=4 * ETH),
           ev("DealClosed", 5, dealId=1, refundedWei=ETH),
           ev("WithdrawalRequested", 6, buyer=b, market=0, amount=ETH, availableAt=0, toMarket=1),
           ev("Moved", 7, buyer=b, fromMarket=0, toMarket=1, amount=ETH)]
    balances = facts.Balances(log)
    at = [balances.covering(b, at=e.at) for e in log]
    # A pending request covers nothing; a deal locks its cost; a close refunds what is unpaid.
    assert at == [10 * ETH, 6 * ETH, 4 * ETH, 4 * ETH, 5 * ETH, 4 * ETH, 4 * ETH]
    assert balances.covering(b, before=log[2].position) == 6 * ETH
    assert balances.covering(b, at=log[0].at - 1) == 0  # before its first deposit
    assert balances.covering(poor.address, at=log[-1].at) == 0


# -- auctions ------------------------------------------------------------------------------

OFFER = {"seller": seller.address, "sellerMeter": seller_meter.address, "energyWh": 1000,
         "floorPriceWeiPerKWh": 10**15, "deadline": 2_000_000, "nonce": 7}
OFFER_HASH = offer_hash(CHAIN, ESCROW, OFFER)
END = 1_000_000 + 100 * 10 + 50  # the auction ends between blocks 10 and 11


def bid_entry(bid_id, key, price, accepted_at, nonce=None, **changes):
    bid = {"offer": OFFER_HASH, "buyer": key.address, "buyerMeter": buyer_meter.address,
           "priceWeiPerKWh": price, "maxWh": 1000, "nonce": nonce or bid_id, "expiry": 3_000_000}
    signature = sign_bid(key, CHAIN, ESCROW, bid)
    bid.update(changes)  # changed after signing: what a tampered book shows
    return {"id": bid_id, "bidder": key.address, "accepted_at": accepted_at,
            "signature": "0x" + signature.hex(),
            "bid": {k: "0x" + v.hex() if isinstance(v, bytes) else str(v) for k, v in bid.items()}}


def book_of(*bids):
    return parse_book([{"listings": [{
        "id": 1, "offer": {k: str(v) for k, v in OFFER.items()},
        "signature": "0x" + sign_offer(seller, CHAIN, ESCROW, OFFER).hex(),
        "hash": "0x" + OFFER_HASH.hex(), "auction_end": END, "status": "sold",
        "bids": list(bids)}]}])


def opened(key, price, nonce, block=11):
    return ev("DealOpened", block, dealId=1, offer=OFFER_HASH, buyer=key.address,
              seller=seller.address, buyerMeter=buyer_meter.address,
              sellerMeter=seller_meter.address, priceWeiPerKWh=price, energyWh=1000,
              expiresAt=4_000_000, bidNonce=nonce)


def auction_findings(log, book):
    return [str(f) for f in audit(log, {}, book, CHAIN, TOKEN, ESCROW).findings]


def test_the_highest_covered_bid_wins_and_agrees():
    # poor bid highest but its escrow never covered it; rich's is next: rich wins rightly.
    book = book_of(bid_entry(1, rich, 2 * 10**15, END - 30),
                   bid_entry(2, poor, 5 * 10**15, END - 20))
    log = [deposit(rich, ETH, 1), deposit(poor, 10**12, 2), opened(rich, 2 * 10**15, 1)]
    assert auction_findings(log, book) == []


def test_a_higher_covered_bid_passed_over_is_caught():
    book = book_of(bid_entry(1, rich, 2 * 10**15, END - 30),
                   bid_entry(2, late, 3 * 10**15, END - 20))
    log = [deposit(rich, ETH, 1), deposit(late, ETH, 2), opened(rich, 2 * 10**15, 1)]
    [line] = auction_findings(log, book)
    assert line.startswith("auction: deal 1: went to bid 1") and "bid 2 of" in line


def test_ties_go_to_the_earliest_bid():
    first = bid_entry(1, rich, 2 * 10**15, END - 30)
    second = bid_entry(2, late, 2 * 10**15, END - 20)
    log = [deposit(rich, ETH, 1), deposit(late, ETH, 2)]
    assert auction_findings(log + [opened(rich, 2 * 10**15, 1)], book_of(first, second)) == []
    [line] = auction_findings(log + [opened(late, 2 * 10**15, 2)], book_of(first, second))
    assert "went to bid 2" in line and "bid 1 of" in line


def test_a_bid_not_covered_at_the_close_loses():
    """A withdrawal requested before the close leaves the higher bid uncovered."""
    book = book_of(bid_entry(1, rich, 2 * 10**15, END - 30),
                   bid_entry(2, late, 3 * 10**15, END - 20))
    log = [deposit(rich, ETH, 1), deposit(late, ETH, 2),
           ev("WithdrawalRequested", 9, buyer=late.address, market=0, amount=ETH, availableAt=0,
              toMarket=255), opened(rich, 2 * 10**15, 1)]
    assert auction_findings(log, book) == []


def test_a_changed_price_in_the_book_and_a_deal_below_the_floor_are_caught():
    book = book_of(bid_entry(1, rich, 2 * 10**15, END - 30, priceWeiPerKWh=9 * 10**15))
    lines = auction_findings([deposit(rich, ETH, 1), opened(rich, 10**14, 1)], book)
    assert any(line.startswith("book: listing 1 bid 1: not signed by") for line in lines)
    assert any("below the floor" in line for line in lines)
    assert any("price 100000000000000 or buyer's meter differ" in line for line in lines)


def test_a_deal_whose_offer_or_bid_is_missing_from_the_book():
    book = book_of(bid_entry(1, rich, 2 * 10**15, END - 30))
    assert auction_findings([opened(rich, 2 * 10**15, 99)], book) == [
        f"auction: deal 1: its bid ({rich.address[:8]}…{rich.address[-4:]}, nonce 99) is not "
        "in the published book"]
    assert "is not in the published book" in auction_findings(
        [opened(rich, 2 * 10**15, 1)], [])[0]


def test_a_malformed_book_is_refused():
    with pytest.raises(BookError, match="listings"):
        parse_book([{"items": []}])
    with pytest.raises(BookError, match="priceWeiPerKWh"):
        book_of(bid_entry(1, rich, 2 * 10**15, END, priceWeiPerKWh="-1"))


# -- mints ---------------------------------------------------------------------------------

DOMAIN = ReadingDomain(CHAIN, TOKEN)
producer = Account.create()


def mint_log(*readings):
    """Enrolled at 360 W in block 1; one mintReadings transaction per (block, wh_in, wh, at)."""
    log = [ev("MeterEnrolled", 1, meter=producer.address, owner=seller.address,
              kind=MeterKind.PRODUCER, ratedPowerW=360)]
    calls, total = {}, 0
    for block, wh_in, wh, at in readings:
        signed = sign_reading(producer, DOMAIN, wh_in, 0, at)
        tx = f"0x{block:064x}"
        calls[tx] = Call("mintReadings", ([signed.struct()], [signed.signature]))
        total += wh
        log.append(ev("EnergyMinted", block, tx, meter=producer.address, owner=seller.address,
                      wh=wh, mintedTotalWh=total, readingWh=wh_in, readingAt=at))
    return log, calls


def mint_findings(log, calls):
    return [str(f) for f in audit(log, calls, [], CHAIN, TOKEN, ESCROW).findings]


def test_mints_within_rated_power_times_the_window_agree():
    enrolled = 1_000_100
    # 360 W = 0.1 Wh/s: 10 Wh in 100 s; after a long idle spell at most an hour's 360 Wh.
    log, calls = mint_log((2, 10, 10, enrolled + 100), (1000, 1000, 360, enrolled + 90_000),
                          (1001, 1000, 10, enrolled + 90_100))
    assert mint_findings(log, calls) == []
    assert [m.allowed_wh for m in facts.mints(log)] == [10, 360, 10]


def test_a_mint_above_the_allowance_is_caught():
    log, calls = mint_log((2, 50, 50, 1_000_100 + 100))
    [line] = mint_findings(log, calls)
    assert "50 Wh is above its allowance of 10 Wh" in line and line.startswith("mint: meter")


def test_a_mint_without_the_meters_signature_is_caught():
    log, calls = mint_log((2, 10, 10, 1_000_200))
    forged = sign_reading(Account.create(), DOMAIN, 10, 0, 1_000_200)
    calls[log[-1].tx] = Call("mintReadings", ([{**forged.struct(), "meter": producer.address}],
                                              [forged.signature]))
    assert mint_findings(log, calls) == [
        f"mint: meter {producer.address[:8]}…{producer.address[-4:]} mint at 1000200: "
        "no reading signed by the meter in its transaction"]


def test_a_mint_from_a_disenrolled_meter_is_caught():
    log, calls = mint_log((3, 10, 10, 1_000_300))
    log.insert(1, ev("MeterDisenrolled", 2, meter=producer.address))
    assert "not an enrolled producer" in mint_findings(facts.in_order(log), calls)[0]


# -- deliveries and the bus ----------------------------------------------------------------

def delivery(deal_id, s_meter, b_meter, steps, first_block, price=10**15, energy=100):
    """A deal opened in first_block and reported at each (seller whOut, buyer whIn, at), each
    report in the first block stamped after its readings."""
    log = [ev("DealOpened", first_block, dealId=deal_id, offer=b"\0" * 32, buyer=rich.address,
              seller=seller.address, buyerMeter=b_meter.address, sellerMeter=s_meter.address,
              priceWeiPerKWh=price, energyWh=energy, expiresAt=9_000_000, bidNonce=deal_id)]
    calls, base, done = {}, None, 0
    for i, (out, inn, at) in enumerate(steps):
        s = sign_reading(s_meter, DOMAIN, 0, out, at)
        b = sign_reading(b_meter, DOMAIN, inn, 0, at)
        tx = f"0x{deal_id:032x}{i:032x}"
        calls[tx] = Call("reportDelivery", (deal_id, s.struct(), s.signature, b.struct(),
                                            b.signature))
        common = {"dealId": deal_id, "buyerWh": inn, "sellerWh": out, "buyerAt": at,
                  "sellerAt": at}
        if base is None:
            base = inn
            log.append(ev("DeliveryStarted", _block_after(at), tx, **common))
            continue
        cumulative = min(inn - base, energy)
        log.append(ev("DeliveryReported", _block_after(at), tx, cumulativeWh=cumulative,
                      stepWh=cumulative - done, stepWei=price * cumulative // 1000
                      - price * done // 1000, **common))
        done = cumulative
    return log, calls


def _block_after(at):
    return (at - 1_000_000) // 100 + 1


def audit_of(*parts):
    log = facts.in_order(e for part in parts for e in part[0])
    calls = {k: v for part in parts for k, v in part[1].items()}
    return [str(f) for f in audit(log, calls, [], CHAIN, TOKEN, ESCROW).findings
            if not f.kind == "auction"]  # these deals have no book entries


def test_signed_deliveries_on_a_shared_bus_agree():
    other_seller, other_buyer = Account.create(), Account.create()
    a = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (90, 55, 1_001_100)], 10)
    # Overlapping: the second seller's meter sent little (5 Wh for 30 paid), the first sent
    # for both (90 Wh for 55 paid): on one bus that agrees.
    b = delivery(2, other_seller, other_buyer, [(500, 700, 1_001_050), (505, 730, 1_001_150)],
                 10)
    assert audit_of(a, b) == []


def test_paid_wh_the_sellers_meters_never_sent_is_caught():
    other_seller, other_buyer = Account.create(), Account.create()
    a = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (30, 55, 1_001_100)], 10)
    b = delivery(2, other_seller, other_buyer, [(500, 700, 1_001_050), (505, 730, 1_001_150)],
                 10)
    assert audit_of(a, b) == ["bus: deals 1, 2: buyers were paid for 85 Wh but the sellers' "
                              "meters sent 35 Wh"]
    # Apart in time, each deal is its own period: deal 2 alone is short, deal 1 too.
    c = delivery(2, other_seller, other_buyer, [(500, 700, 1_009_050), (505, 730, 1_009_150)],
                 80)
    assert [line.split(":")[1] for line in audit_of(a, c)] == [" deals 1", " deals 2"]


def test_a_seller_reading_a_second_behind_the_buyers_is_no_disagreement():
    """At the emulator's pace a second is Wh: the seller's last reading, signed a second
    before the buyer's, has not yet counted what the buyer's has."""
    fast = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (4, 7, 1_001_002)], 10)
    log, calls = fast
    last = log[-1]
    behind = sign_reading(seller_meter, DOMAIN, 0, 4, 1_001_001)
    calls[last.tx] = Call("reportDelivery", (1, behind.struct(), behind.signature,
                                             *calls[last.tx].args[3:]))
    log[-1] = Event(last.name, {**last.args, "sellerAt": 1_001_001}, last.block, last.index,
                    last.at, last.tx)
    assert audit_of((log, calls)) == []
    # The same 7 Wh paid over a minute while the seller's meter sent 4 is a disagreement.
    slow = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (4, 7, 1_001_060)], 10)
    assert [line.split(":")[0] for line in audit_of(slow)] == ["bus"]


def test_a_report_not_signed_by_the_deals_meter_is_caught():
    log, calls = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (60, 55, 1_001_100)],
                          10)
    stranger = sign_reading(Account.create(), DOMAIN, 55, 0, 1_001_100)
    dealt = calls[log[-1].tx].args
    calls[log[-1].tx] = Call("reportDelivery", (*dealt[:3],
                                                {**stranger.struct(), "meter": buyer_meter.address},
                                                stranger.signature))
    lines = audit_of((log, calls))
    assert lines == [f"delivery: deal 1 report in block 12: the buyer's reading is not signed by "
                     f"its meter {buyer_meter.address[:8]}…{buyer_meter.address[-4:]}"]


def test_a_report_paying_more_than_the_buyers_meter_counted_is_caught():
    log, calls = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (60, 55, 1_001_100)],
                          10)
    inflated = Event(log[-1].name, {**log[-1].args, "cumulativeWh": 80, "stepWh": 80},
                     log[-1].block, log[-1].index, log[-1].at, log[-1].tx)
    lines = audit_of((log[:-1] + [inflated], calls))
    assert any("paid up to 80 Wh; the buyer's meter counted 55 Wh" in line for line in lines)


def test_a_close_that_refunds_more_than_its_reports_leave_is_caught():
    log, calls = delivery(1, seller_meter, buyer_meter, [(0, 0, 1_001_000), (60, 55, 1_001_100)],
                          10, price=10**15, energy=100)
    closed = {"dealId": 1, "reason": 2, "deliveredWh": 55, "paidWei": 55 * 10**12,
              "returnedWh": 45}
    honest = ev("DealClosed", 20, refundedWei=45 * 10**12, **closed)
    assert audit_of((log + [honest], calls)) == []
    greedy = ev("DealClosed", 20, refundedWei=100 * 10**12, **closed)
    [line] = audit_of((log + [greedy], calls))
    assert line.startswith("delivery: deal 1: closed with 55 Wh delivered")


def test_reading_tuple_matches_the_struct_the_calls_carry():
    signed = sign_reading(producer, DOMAIN, 1, 2, 3)
    assert reading_tuple(signed.struct()) == (producer.address, 1, 2, 3)
