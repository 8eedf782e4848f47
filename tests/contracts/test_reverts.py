"""The remaining revert paths, each asserting its specific custom error."""

from __future__ import annotations

import pytest

from .common import COMMUNITY, CONSUMER, ENERGY, LISTING, LOTS, PRODUCER, TTL

ZERO = "0x" + "00" * 20


@pytest.mark.parametrize(
    ("meter", "owner", "kind", "rated"),
    [(ZERO, "owner", PRODUCER, 1), ("meter", ZERO, PRODUCER, 1), ("meter", "owner", 0, 1),
     ("meter", "owner", CONSUMER, 0)],
)
def test_malformed_enrollment_is_refused(chain, reverts, meter, owner, kind, rated):
    meter = chain.seller_meter if meter == "meter" else meter
    owner = chain.seller if owner == "owner" else owner
    with reverts(f"InvalidEnrollment({meter})"):
        chain.token.functions.enrollMeter(meter, owner, kind, rated).transact({"from": chain.admin})


def test_disenrolling_an_unknown_meter_is_refused(chain, reverts):
    with reverts(f"MeterNotEnrolled({chain.stranger})"):
        chain.token.functions.disenrollMeter(chain.stranger).transact({"from": chain.admin})


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


@pytest.mark.parametrize("case", ["zero energy", "zero price", "self deal", "past expiry"])
def test_malformed_deals_are_refused(enrolled, reverts, case):
    chain = enrolled
    chain.send(chain.token.functions.approve(chain.escrow.address, ENERGY), chain.seller)
    kwargs = {
        "zero energy": {"energy": 0},
        "zero price": {"price": 0},
        "self deal": {"seller": chain.buyer},
        "past expiry": {"expires": chain.now() - 1},
    }[case]
    with reverts(f"InvalidDeal({LISTING})"):
        chain.open_deal(**kwargs).transact({"from": chain.admin})


def test_a_deal_expiring_in_the_future_can_be_closed_only_by_parties(deal, chain, reverts):
    with reverts(f"NotDealParty({chain.admin})"):
        chain.escrow.functions.closeDeal(deal).transact({"from": chain.admin})
    chain.travel_to(chain.now() + TTL + 1)
    chain.send(chain.escrow.functions.closeDeal(deal), chain.admin)
    assert chain.escrow.functions.getDeal(deal).call()[10] == 4  # Expired


def test_the_operator_closes_a_deal_only_for_a_fault(deal, chain, reverts):
    escrow = chain.escrow.functions
    with reverts("AccessControlUnauthorizedAccount"):
        escrow.closeDealForFault(deal, 5).transact({"from": chain.buyer})
    with reverts("NotAFault(2)"):
        escrow.closeDealForFault(deal, 2).transact({"from": chain.admin})
    chain.send(escrow.reportDelivery(deal, 100), chain.buyer_meter)
    receipt = chain.send(escrow.closeDealForFault(deal, 5), chain.admin)  # MeterOffline
    (closed,) = chain.events(receipt, chain.escrow, "DealClosed")
    assert closed["reason"] == 5 and closed["deliveredWh"] == 100
    assert escrow.lockedOf(chain.buyer).call() == 0
    with reverts(f"DealNotOpen({deal})"):
        escrow.closeDealForFault(deal, 6).transact({"from": chain.admin})
