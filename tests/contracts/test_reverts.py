"""The revert paths of enrollment, openDeal and reportDelivery, each with its custom error."""

from __future__ import annotations

import pytest

from .common import (
    BUYER_BASE,
    COMMUNITY,
    CONSUMER,
    ENERGY,
    FLOOR,
    LOTS,
    MAX_RATED_W,
    PRICE,
    PRODUCER,
    SELLER_BASE,
    TTL,
)

ZERO = "0x" + "00" * 20

# -- enrollMeter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meter", "owner", "kind", "rated"),
    [(ZERO, "owner", PRODUCER, 1), ("meter", ZERO, PRODUCER, 1), ("meter", "owner", 0, 1),
     ("meter", "owner", CONSUMER, 0), ("meter", "owner", PRODUCER, MAX_RATED_W + 1)],
    ids=["no meter", "no owner", "no kind", "no rating", "above the maximum"],
)
def test_malformed_enrollment_is_refused(chain, reverts, meter, owner, kind, rated):
    meter = chain.seller_meter if meter == "meter" else meter
    owner = chain.seller if owner == "owner" else owner
    signer = chain.seller if owner == ZERO else None
    with reverts(f"InvalidEnrollment({meter})"):
        chain.enroll_fn(meter, owner, kind, rated, signer=signer).transact({"from": chain.admin})


def test_an_expired_consent_is_refused(chain, reverts):
    deadline = chain.now() - 1
    with reverts(f"ConsentExpired({deadline})"):
        chain.enroll_fn(chain.seller_meter, chain.seller, PRODUCER, 100,
                        deadline=deadline).transact({"from": chain.admin})


@pytest.mark.parametrize("changed", ["meter", "owner", "kind", "ratedPowerW", "deadline"])
def test_enrollment_on_other_terms_than_consented_is_refused(chain, reverts, changed):
    value = {"meter": chain.stranger, "owner": chain.buyer, "kind": CONSUMER,
             "ratedPowerW": 5_000, "deadline": chain.now() + 2 * TTL}[changed]
    with reverts("InvalidConsent"):
        chain.enroll_fn(chain.seller_meter, chain.seller, PRODUCER, 100,
                        changed={changed: value}).transact({"from": chain.admin})
    assert chain.token.functions.meterOf(chain.seller_meter).call()[1] == 0


def test_a_meter_enrolled_to_another_owner_is_taken(chain, reverts):
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 100)
    with reverts(f"MeterTaken({chain.seller_meter}, {chain.seller})"):
        chain.enroll_fn(chain.seller_meter, chain.buyer, CONSUMER, 100).transact(
            {"from": chain.admin})
    token = chain.token.functions
    chain.send(token.disenrollMeter(chain.seller_meter), chain.admin)
    # Disenrolled, it stays bound to its owner: only the owner's release frees it.
    assert token.boundOwnerOf(chain.seller_meter).call() == chain.seller
    with reverts(f"MeterTaken({chain.seller_meter}, {chain.seller})"):
        chain.enroll_fn(chain.seller_meter, chain.buyer, CONSUMER, 100).transact(
            {"from": chain.admin})
    with reverts(f"NotMeterOwner({chain.seller_meter}, {chain.admin})"):
        token.releaseMeter(chain.seller_meter).transact({"from": chain.admin})
    receipt = chain.send(token.releaseMeter(chain.seller_meter), chain.seller)
    assert chain.events(receipt, chain.token, "MeterReleased") == [
        {"meter": chain.seller_meter, "owner": chain.seller}]
    chain.enroll(chain.seller_meter, chain.buyer, CONSUMER, 100)  # released first: fine
    assert chain.token.functions.meterOf(chain.seller_meter).call()[:2] == [chain.buyer, CONSUMER]


def test_disenrolling_an_unknown_meter_is_refused(chain, reverts):
    with reverts(f"MeterNotEnrolled({chain.stranger})"):
        chain.token.functions.disenrollMeter(chain.stranger).transact({"from": chain.admin})


# -- balances ----------------------------------------------------------------------------------


@pytest.mark.parametrize("market", [LOTS, COMMUNITY])
def test_zero_amounts_are_refused(chain, reverts, market):
    with reverts("ZeroAmount()"):
        chain.escrow.functions.deposit(market).transact({"from": chain.buyer, "value": 0})
    # Amount 0 cancels a request: with none pending, there is nothing to cancel.
    with reverts(f"NoWithdrawalPending({market})"):
        chain.escrow.functions.requestWithdrawal(market, 0).transact({"from": chain.buyer})


def test_nothing_owed_is_refused(chain, reverts):
    with reverts(f"NothingOwed({chain.seller})"):
        chain.escrow.functions.withdrawOwed().transact({"from": chain.seller})


# -- openDeal ------------------------------------------------------------------------------------


@pytest.fixture
def approved(enrolled):
    """The standard setup with the seller's tokens approved for two deals."""
    enrolled.send(enrolled.token.functions.approve(enrolled.escrow.address, 2 * ENERGY),
                  enrolled.seller)
    return enrolled


@pytest.mark.parametrize(
    "case", ["zero energy", "above the offer", "above the bid", "self deal", "cost rounds to 0"]
)
def test_malformed_deals_are_refused(approved, reverts, case):
    chain = approved
    offer = chain.signed_offer(energy=ENERGY - 1 if case == "above the offer" else ENERGY,
                               floor=0)
    bid_fields = {"max_wh": ENERGY - 1} if case == "above the bid" else {}
    if case == "self deal":
        chain.enroll(chain.stranger, chain.seller, CONSUMER, 500)
        bid_fields = {"buyer": chain.seller, "buyer_meter": chain.stranger}
    if case == "cost rounds to 0":
        bid_fields = {"price": 999, "max_wh": 1}  # F8: 999 wei/kWh × 1 Wh < 1 wei
    energy = {"zero energy": 0, "cost rounds to 0": 1}.get(case, ENERGY)
    bid = chain.signed_bid(offer[0], **bid_fields)
    with reverts(f"InvalidDeal({chain.offer_hash(offer[0])})"):
        chain.open_with(offer, bid, energy).transact({"from": chain.admin})


def test_f8_a_price_times_energy_below_1000_is_an_invalid_deal(approved, reverts):
    """F8: price × Wh < 1000 would lock 0 wei for real energy; the escrow refuses the deal."""
    chain = approved
    offer = chain.signed_offer(floor=1)
    bid = chain.signed_bid(offer[0], price=333, max_wh=3)  # 333 × 3 = 999
    with reverts("InvalidDeal"):
        chain.open_with(offer, bid, 3).transact({"from": chain.admin})
    chain.send(chain.open_with(offer, chain.signed_bid(offer[0], price=334, max_wh=3), 3),
               chain.admin)  # 1 002 / 1000: 1 wei locked
    assert chain.deal(1)["lockedWei"] == 1


def test_a_bid_below_the_floor_is_refused(approved, reverts):
    chain = approved
    offer = chain.signed_offer(floor=PRICE + 1)
    with reverts(f"PriceBelowFloor({PRICE}, {PRICE + 1})"):
        chain.open_with(offer, chain.signed_bid(offer[0])).transact({"from": chain.admin})


def test_a_bid_for_another_offer_is_refused(approved, reverts):
    chain = approved
    offer, other = chain.signed_offer(nonce=1), chain.signed_offer(nonce=2)
    bid = chain.signed_bid(other[0])
    with reverts(f"BidNotForOffer({chain.offer_hash(other[0])})"):
        chain.open_with(offer, bid).transact({"from": chain.admin})


def test_an_expired_offer_is_refused(approved, reverts):
    chain = approved
    deadline = chain.now() + 10
    offer = chain.signed_offer(deadline=deadline)
    bid = chain.signed_bid(offer[0])
    chain.travel_to(deadline + 1)
    with reverts(f"OfferExpired({deadline})"):
        chain.open_with(offer, bid).transact({"from": chain.admin})


def test_a_deal_opened_twice_for_one_offer_is_refused(approved, reverts):
    """F3: one signed offer sells its energy once, whatever bids the operator holds."""
    chain = approved
    offer = chain.signed_offer()
    chain.send(chain.open_with(offer, chain.signed_bid(offer[0], nonce=1)), chain.admin)
    digest = chain.offer_hash(offer[0])
    assert chain.escrow.functions.dealOfOffer(digest).call() == 1
    assert chain.escrow.functions.offerUsed(digest).call()
    with reverts(f"OfferUsed({digest})"):
        chain.open_with(offer, chain.signed_bid(offer[0], nonce=2)).transact(
            {"from": chain.admin})


def test_a_cancelled_offer_opens_no_deal(approved, reverts):
    chain = approved
    offer = chain.signed_offer()
    bid = chain.signed_bid(offer[0])
    digest = chain.offer_hash(offer[0])
    from contracts.bindings import offer_tuple

    with reverts(f"NotDealParty({chain.admin})"):
        chain.escrow.functions.cancelOffer(offer_tuple(offer[0])).transact({"from": chain.admin})
    receipt = chain.send(chain.escrow.functions.cancelOffer(offer_tuple(offer[0])), chain.seller)
    assert chain.events(receipt, chain.escrow, "OfferCancelled") == [
        {"offer": digest, "seller": chain.seller}
    ]
    assert chain.escrow.functions.offerUsed(digest).call()
    assert chain.escrow.functions.dealOfOffer(digest).call() == 0
    with reverts("OfferUsed"):
        chain.open_with(offer, bid).transact({"from": chain.admin})
    with reverts("OfferUsed"):
        chain.escrow.functions.cancelOffer(offer_tuple(offer[0])).transact({"from": chain.seller})


def test_an_opened_offer_cannot_be_cancelled(approved, reverts):
    chain = approved
    offer = chain.signed_offer()
    chain.send(chain.open_with(offer, chain.signed_bid(offer[0])), chain.admin)
    from contracts.bindings import offer_tuple

    with reverts("OfferUsed"):
        chain.escrow.functions.cancelOffer(offer_tuple(offer[0])).transact({"from": chain.seller})


@pytest.mark.parametrize("case", ["seller meter not enrolled", "seller meter is a consumer",
                                  "seller meter is another's", "buyer meter not enrolled",
                                  "buyer meter is a producer", "buyer meter is another's"])
def test_deals_need_the_parties_enrolled_meters(approved, reverts, case):
    chain = approved
    other = chain.w3.eth.accounts[7]
    offer_fields, bid_fields = {}, {}
    if case == "seller meter not enrolled":
        offer_fields = {"seller_meter": other}
    elif case == "seller meter is a consumer":
        offer_fields = {"seller_meter": chain.buyer_meter}
    elif case == "seller meter is another's":
        chain.enroll(other, chain.stranger, PRODUCER, 100)
        offer_fields = {"seller_meter": other}
    elif case == "buyer meter not enrolled":
        bid_fields = {"buyer_meter": other}
    elif case == "buyer meter is a producer":
        bid_fields = {"buyer_meter": chain.seller_meter}
    else:
        chain.enroll(other, chain.stranger, CONSUMER, 100)
        bid_fields = {"buyer_meter": other}
    offer = chain.signed_offer(**offer_fields)
    bid = chain.signed_bid(offer[0], **bid_fields)
    wrong = offer_fields.get("seller_meter") or bid_fields["buyer_meter"]
    with reverts(f"WrongMeter({wrong})"):
        chain.open_with(offer, bid).transact({"from": chain.admin})


# -- reportDelivery ------------------------------------------------------------------------------


def test_reports_need_the_deals_meters(chain, deal, reverts):
    with reverts(f"WrongMeter({chain.stranger})"):
        chain.report_fn(deal, BUYER_BASE, SELLER_BASE, seller_meter=chain.stranger).transact(
            {"from": chain.stranger})
    with reverts(f"WrongMeter({chain.seller_meter})"):
        chain.report_fn(deal, BUYER_BASE, SELLER_BASE, buyer_meter=chain.seller_meter).transact(
            {"from": chain.stranger})


def test_reports_need_both_meters_signatures(chain, deal, reverts):
    d = chain.deal(deal)
    good = chain.reading(d["sellerMeter"], wh_out=SELLER_BASE)
    forged = chain.reading(d["buyerMeter"], wh_in=BUYER_BASE, signer=chain.buyer)
    with reverts(f"InvalidReading({chain.buyer_meter})"):
        chain.escrow.functions.reportDelivery(deal, *good, *forged).transact(
            {"from": chain.stranger})
    forged = chain.reading(d["sellerMeter"], wh_out=SELLER_BASE, signer=chain.seller)
    buyer = chain.reading(d["buyerMeter"], wh_in=BUYER_BASE)
    with reverts(f"InvalidReading({chain.seller_meter})"):
        chain.escrow.functions.reportDelivery(deal, *forged, *buyer).transact(
            {"from": chain.stranger})


def test_readings_before_the_deal_opened_or_in_the_future_are_refused(chain, deal, reverts):
    opened = chain.deal(deal)["openedAt"]
    with reverts(f"ReadingOutOfTime({chain.seller_meter}, {opened - 1})"):
        chain.report_fn(deal, BUYER_BASE, SELLER_BASE, at=opened - 1).transact(
            {"from": chain.stranger})
    future = chain.now() + 600
    with reverts(f"ReadingOutOfTime({chain.seller_meter}, {future})"):
        chain.report_fn(deal, BUYER_BASE, SELLER_BASE, at=future).transact(
            {"from": chain.stranger})


def test_f8_readings_after_the_deals_expiry_are_refused(chain, deal, reverts):
    """F8: energy metered after a deal expired is not the deal's; its report is refused."""
    chain.start(deal)
    expires = chain.deal(deal)["expiresAt"]
    chain.travel_to(expires + 60)
    with reverts(f"ReadingOutOfTime({chain.seller_meter}, {expires + 1})"):
        chain.report_fn(deal, BUYER_BASE + 500, SELLER_BASE + 500, at=expires + 1).transact(
            {"from": chain.stranger})
    # Readings taken up to the expiry still settle (a late-sent final report).
    chain.send(chain.report_fn(deal, BUYER_BASE + 500, SELLER_BASE + 500, at=expires),
               chain.stranger)
    assert chain.deal(deal)["deliveredWh"] == 500


def test_readings_older_than_the_last_used_are_refused(chain, deal, reverts):
    chain.start(deal)
    last = chain.deal(deal)["buyerLastAt"]
    chain.travel_to(chain.now() + 30)
    chain.send(chain.report_fn(deal, BUYER_BASE + 10, SELLER_BASE + 10), chain.stranger)
    with reverts(f"ReadingOutOfTime({chain.buyer_meter}, {last})"):
        chain.report_fn(deal, BUYER_BASE + 20, SELLER_BASE + 20, buyer_at=last).transact(
            {"from": chain.stranger})


def test_counters_going_back_are_refused(chain, deal, reverts):
    chain.deliver(deal, 400)
    with reverts(f"DeliveryWentBackwards({BUYER_BASE + 400}, {BUYER_BASE + 399})"):
        chain.report_fn(deal, BUYER_BASE + 399, SELLER_BASE + 400).transact(
            {"from": chain.stranger})
    with reverts(f"DeliveryWentBackwards({SELLER_BASE + 400}, {SELLER_BASE + 399})"):
        chain.report_fn(deal, BUYER_BASE + 400, SELLER_BASE + 399).transact(
            {"from": chain.stranger})


# -- closing ---------------------------------------------------------------------------------------


def test_a_deal_expiring_in_the_future_can_be_closed_only_by_parties(deal, chain, reverts):
    with reverts(f"NotDealParty({chain.admin})"):
        chain.escrow.functions.closeDeal(deal).transact({"from": chain.admin})
    chain.travel_to(chain.deal(deal)["expiresAt"])
    chain.send(chain.escrow.functions.closeDeal(deal), chain.admin)
    assert chain.deal(deal)["closeReason"] == 4  # Expired


@pytest.mark.parametrize("reason", [5, 6, 7], ids=["MeterOffline", "SupplyExhausted",
                                                  "MetersDisagree"])
def test_the_operator_closes_a_deal_only_for_a_fault(deal, chain, reverts, reason):
    escrow = chain.escrow.functions
    with reverts("AccessControlUnauthorizedAccount"):
        escrow.closeDealForFault(deal, reason).transact({"from": chain.buyer})
    with reverts("NotAFault(2)"):
        escrow.closeDealForFault(deal, 2).transact({"from": chain.admin})
    chain.deliver(deal, 100)
    receipt = chain.send(escrow.closeDealForFault(deal, reason), chain.admin)
    (closed,) = chain.events(receipt, chain.escrow, "DealClosed")
    assert closed["reason"] == reason and closed["deliveredWh"] == 100
    assert escrow.lockedOf(chain.buyer).call() == 0
    with reverts(f"DealNotOpen({deal})"):
        escrow.closeDealForFault(deal, 6).transact({"from": chain.admin})


def test_standard_terms_are_above_the_floor():
    assert PRICE >= FLOOR
