"""EnergyToken: metadata, the meter registry, minting from readings and the escrow's burn."""

from __future__ import annotations

from .common import CONSUMER, PRODUCER


def test_metadata(chain):
    token = chain.token.functions
    assert token.name().call() == "gridbid Energy"
    assert token.symbol().call() == "GEN"
    assert token.decimals().call() == 3
    assert token.totalSupply().call() == 0


def test_enroll_meter_records_it_and_emits(chain):
    token = chain.token.functions
    receipt = chain.send(
        token.enrollMeter(chain.seller_meter, chain.seller, PRODUCER, 3_000), chain.admin
    )
    assert token.meterOf(chain.seller_meter).call() == [
        chain.seller, PRODUCER, 3_000, 0, chain.now()
    ]
    assert chain.events(receipt, chain.token, "MeterEnrolled") == [
        {"meter": chain.seller_meter, "owner": chain.seller, "kind": PRODUCER,
         "ratedPowerW": 3_000}
    ]


def test_only_admin_enrolls(chain, reverts):
    with reverts("AccessControlUnauthorizedAccount"):
        chain.token.functions.enrollMeter(
            chain.seller_meter, chain.stranger, PRODUCER, 3_000
        ).transact({"from": chain.stranger})


def test_mint_reading_mints_the_increase_to_the_owner(chain):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(1_200), chain.seller_meter)
    chain.travel_to(chain.now() + 360)  # 3 kW for 6 minutes: 300 Wh more may be minted
    receipt = chain.send(token.mintReading(1_500), chain.seller_meter)
    assert token.balanceOf(chain.seller).call() == 1_500
    assert token.balanceOf(chain.seller_meter).call() == 0
    assert token.meterOf(chain.seller_meter).call()[3] == 1_500
    assert chain.events(receipt, chain.token, "EnergyMinted") == [
        {"meter": chain.seller_meter, "owner": chain.seller, "wh": 300, "cumulativeWh": 1_500}
    ]


def test_equal_reading_is_a_no_op(chain):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(800), chain.seller_meter)
    receipt = chain.send(token.mintReading(800), chain.seller_meter)
    assert token.balanceOf(chain.seller).call() == 800
    assert chain.events(receipt, chain.token, "EnergyMinted") == []


def test_backwards_reading_reverts(chain, reverts):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(800), chain.seller_meter)
    with reverts("ReadingWentBackwards(800, 799)"):
        token.mintReading(799).transact({"from": chain.seller_meter})


def test_only_producer_meters_mint(chain, reverts):
    token = chain.token.functions
    chain.send(token.enrollMeter(chain.buyer_meter, chain.buyer, CONSUMER, 500), chain.admin)
    with reverts(f"NotProducerMeter({chain.stranger})"):
        token.mintReading(10).transact({"from": chain.stranger})
    with reverts(f"NotProducerMeter({chain.buyer_meter})"):
        token.mintReading(10).transact({"from": chain.buyer_meter})


def test_disenrolled_meter_cannot_mint_and_re_enrolling_does_not_mint_twice(chain, reverts):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(1_000), chain.seller_meter)
    receipt = chain.send(token.disenrollMeter(chain.seller_meter), chain.admin)
    assert chain.events(receipt, chain.token, "MeterDisenrolled") == [
        {"meter": chain.seller_meter}
    ]
    with reverts("NotProducerMeter"):
        token.mintReading(1_100).transact({"from": chain.seller_meter})
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(1_100), chain.seller_meter)
    assert token.balanceOf(chain.seller).call() == 1_100


def test_burn_needs_the_escrow_role(chain, reverts):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.send(token.mintReading(100), chain.seller_meter)
    with reverts("AccessControlUnauthorizedAccount"):
        token.burn(10).transact({"from": chain.seller})
    role = token.ESCROW_ROLE().call()
    chain.send(token.grantRole(role, chain.seller), chain.admin)
    chain.send(token.burn(10), chain.seller)
    assert token.balanceOf(chain.seller).call() == 90
    assert token.totalSupply().call() == 90
