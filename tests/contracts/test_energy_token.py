"""EnergyToken: metadata, enrollment with consent, minting from signed readings, permit, burn."""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data

from contracts.bindings import PERMIT_TYPES, TOKEN_DOMAIN, reading_typed_data, typed_data

from .common import CONSUMER, MAX_RATED_W, PRODUCER, PRODUCER_W

WINDOW = 3600  # EnergyToken.MINT_WINDOW_S
NOT_PRODUCER, BAD_SIGNATURE, FROM_THE_FUTURE, STALE, WENT_BACKWARDS = 1, 2, 3, 4, 5


def minted(chain, receipt):
    """(wh, mintedTotalWh, readingWh) of each EnergyMinted in a receipt."""
    return [(e["wh"], e["mintedTotalWh"], e["readingWh"])
            for e in chain.events(receipt, chain.token, "EnergyMinted")]


def refused(chain, receipt):
    """(meter, reason) of each ReadingRefused in a receipt."""
    return [(e["meter"], e["reason"]) for e in chain.events(receipt, chain.token, "ReadingRefused")]


def test_metadata(chain):
    token = chain.token.functions
    assert token.name().call() == "gridbid Energy"
    assert token.symbol().call() == "GEN"
    assert token.decimals().call() == 3
    assert token.totalSupply().call() == 0
    assert token.MINT_WINDOW_S().call() == WINDOW
    assert token.maxRatedPowerW().call() == MAX_RATED_W


def test_enroll_meter_with_consent_records_it_and_emits(chain):
    receipt = chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 3_000)
    assert chain.token.functions.meterOf(chain.seller_meter).call() == [
        chain.seller, PRODUCER, 3_000, 0, chain.now()
    ]
    assert chain.events(receipt, chain.token, "MeterEnrolled") == [
        {"meter": chain.seller_meter, "owner": chain.seller, "kind": PRODUCER,
         "ratedPowerW": 3_000}
    ]


def test_only_admin_enrolls(chain, reverts):
    with reverts("AccessControlUnauthorizedAccount"):
        chain.enroll_fn(chain.seller_meter, chain.seller, PRODUCER, 3_000).transact(
            {"from": chain.stranger})


def test_re_enrolling_keeps_the_last_reading(chain):
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.mint(chain.seller_meter, 1_000)
    before = chain.token.functions.meterOf(chain.seller_meter).call()
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 2_000)  # a new rating
    assert chain.token.functions.meterOf(chain.seller_meter).call() == [
        chain.seller, PRODUCER, 2_000, before[3], before[4]
    ]


def test_a_reading_mints_the_increase_to_the_owner_and_anyone_may_send_it(chain):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.mint(chain.seller_meter, 1_200)
    chain.travel_to(chain.now() + 360)  # 6 kW for 6 minutes: 600 Wh more may be minted
    at = chain.now()
    receipt = chain.send(chain.mint_fn(chain.reading(chain.seller_meter, 1_500, at=at)),
                         chain.buyer)
    assert token.balanceOf(chain.seller).call() == 1_500
    assert token.balanceOf(chain.seller_meter).call() == 0
    assert token.meterOf(chain.seller_meter).call()[3:] == [1_500, at]
    assert chain.events(receipt, chain.token, "EnergyMinted") == [
        {"meter": chain.seller_meter, "owner": chain.seller, "wh": 300, "mintedTotalWh": 1_500,
         "readingWh": 1_500, "readingAt": at}
    ]


def test_the_reading_digest_is_the_eip712_one(chain):
    reading, signature = chain.reading(chain.seller_meter, 5, 7, at=1_234)
    struct = dict(zip(["meter", "whIn", "whOut", "timestamp"], reading, strict=True))
    full = reading_typed_data(chain.chain_id, chain.token.address, struct)
    signable = encode_typed_data(full_message=full)
    from web3 import Web3

    expected = Web3.keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert chain.token.functions.hashReading(reading).call() == expected
    assert chain.token.functions.readingSigner(reading, signature).call() == chain.seller_meter
    assert chain.token.functions.readingSigner(reading, b"\x01" * 65).call() == "0x" + "00" * 20


def test_each_refused_reading_is_skipped_with_its_reason_and_the_rest_mint(chain):
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.enroll(chain.buyer_meter, chain.buyer, CONSUMER, 500)
    chain.mint(chain.seller_meter, 1_000)
    last_at = chain.token.functions.meterOf(chain.seller_meter).call()[4]
    chain.travel_to(last_at + 60)
    now = chain.now()
    batch = [
        chain.reading(chain.buyer_meter, 50, at=now),  # a consumer meter cannot mint
        chain.reading(chain.stranger, 50, at=now),  # nor an unknown one
        chain.reading(chain.seller_meter, 1_050, at=now, signer=chain.stranger),
        chain.reading(chain.seller_meter, 1_050, at=now + 3_600),  # from the future
        chain.reading(chain.seller_meter, 1_050, at=last_at),  # not after the last one
        chain.reading(chain.seller_meter, 999, at=now),  # below what was minted
        chain.reading(chain.seller_meter, 1_050, at=now),  # a good one: mints
    ]
    receipt = chain.send(chain.mint_fn(*batch), chain.stranger)
    assert refused(chain, receipt) == [
        (chain.buyer_meter, NOT_PRODUCER), (chain.stranger, NOT_PRODUCER),
        (chain.seller_meter, BAD_SIGNATURE), (chain.seller_meter, FROM_THE_FUTURE),
        (chain.seller_meter, STALE), (chain.seller_meter, WENT_BACKWARDS),
    ]
    assert minted(chain, receipt) == [(50, 1_050, 1_050)]
    assert chain.token.functions.balanceOf(chain.seller).call() == 1_050


def test_a_replayed_batch_mints_nothing(chain):
    chain.enroll_producer(chain.seller_meter, chain.seller)
    fn = chain.mint_fn(chain.reading(chain.seller_meter, 800))
    chain.send(fn, chain.stranger)
    receipt = chain.send(fn, chain.stranger)
    assert refused(chain, receipt) == [(chain.seller_meter, STALE)]
    assert chain.token.functions.balanceOf(chain.seller).call() == 800


def test_readings_and_signatures_must_pair(chain, reverts):
    reading, signature = chain.reading(chain.seller_meter, 1)
    with reverts("LengthMismatch()"):
        chain.token.functions.mintReadings([reading], [signature, signature]).transact(
            {"from": chain.stranger})


def test_f6_thirty_idle_days_then_one_reading_mint_at_most_one_window(chain):
    """F6: a meter idle for 30 days, then one huge reading, mints rated × MINT_WINDOW_S only."""
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 3_000)
    chain.baseline(chain.seller_meter)
    chain.travel_to(chain.now() + 30 * 24 * 3600)
    receipt = chain.mint(chain.seller_meter, 10**9)  # what 30 days at 1.4 MW would read
    cap = 3_000 * WINDOW // 3600
    assert minted(chain, receipt) == [(cap, cap, 10**9)]
    assert chain.token.functions.balanceOf(chain.seller).call() == cap


def test_f6_an_over_cap_reading_is_clamped_carried_over_and_the_batch_still_mints(chain):
    """F6: a burst above the cap is clamped (not refused), the rest minted later as time allows,
    and the other meters' readings in the same batch mint as usual."""
    other = chain.w3.eth.accounts[6]
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 3_600)  # 1 Wh a second
    chain.enroll(other, chain.buyer, PRODUCER, 3_600)
    chain.travel_to(chain.now() + 10)
    chain.send(chain.mint_fn(chain.reading(chain.seller_meter), chain.reading(other)),
               chain.stranger)  # both baselines (counters at 0)
    start = chain.token.functions.meterOf(chain.seller_meter).call()[4]
    chain.travel_to(start + 100)
    at = start + 100
    batch = [chain.reading(chain.seller_meter, 500, at=at), chain.reading(other, 80, at=at)]
    receipt = chain.send(chain.mint_fn(*batch), chain.stranger)
    assert minted(chain, receipt) == [(100, 100, 500), (80, 80, 80)]
    # The 400 Wh above the cap carry over: the next readings mint them as their time allows.
    chain.travel_to(at + 300)
    receipt = chain.mint(chain.seller_meter, 500, at=at + 300)
    assert minted(chain, receipt) == [(300, 400, 500)]
    chain.travel_to(at + 900)
    receipt = chain.mint(chain.seller_meter, 500, at=at + 900)
    assert minted(chain, receipt) == [(100, 500, 500)]
    assert chain.token.functions.balanceOf(chain.seller).call() == 500


def test_the_window_is_the_readings_signed_time_not_the_block_time(chain):
    """F6: a reading signed a minute after the last one mints a minute's worth, however late
    it is sent."""
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, 3_600)
    chain.baseline(chain.seller_meter)
    start = chain.token.functions.meterOf(chain.seller_meter).call()[4]
    chain.travel_to(start + 2 * 3600)  # sent two hours later
    receipt = chain.mint(chain.seller_meter, 10_000, at=start + 60)
    assert minted(chain, receipt) == [(60, 60, 10_000)]
    token = chain.token.functions
    assert token.mintableWh(chain.seller_meter, start + 90).call() == 30
    # A full window of signed time is capped by the block-time allowance the 60 Wh drew on.
    allowance = token.mintAllowanceWh(chain.seller_meter).call()
    assert 3_600 - 60 <= allowance < 3_600
    assert token.mintableWh(chain.seller_meter, start + 10**6).call() == allowance


def test_disenrolled_meter_cannot_mint_and_re_enrolling_mints_neither_twice_nor_the_pause(
    chain,
):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.mint(chain.seller_meter, 1_000)
    receipt = chain.send(token.disenrollMeter(chain.seller_meter), chain.admin)
    assert chain.events(receipt, chain.token, "MeterDisenrolled") == [
        {"meter": chain.seller_meter}
    ]
    chain.travel_to(chain.now() + 10)
    assert refused(chain, chain.mint(chain.seller_meter, 1_100)) == [
        (chain.seller_meter, NOT_PRODUCER)
    ]
    # Re-enrolled, its first reading is a baseline: what it counted while suspended mints not.
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, PRODUCER_W)
    receipt = chain.baseline(chain.seller_meter, 1_100)
    assert chain.events(receipt, chain.token, "MeterBaseline")[0]["readingWh"] == 1_100
    chain.travel_to(chain.now() + 600)
    chain.mint(chain.seller_meter, 1_200)
    assert token.balanceOf(chain.seller).call() == 1_100


def test_a_seller_permits_the_escrow_without_a_transaction_of_its_own(chain):
    token = chain.token.functions
    deadline = chain.now() + 600
    message = {"owner": chain.seller, "spender": chain.escrow.address, "value": 1_234,
               "nonce": token.nonces(chain.seller).call(), "deadline": deadline}
    full = typed_data(PERMIT_TYPES, TOKEN_DOMAIN, chain.chain_id, chain.token.address, message)
    sig = chain.key(chain.seller).sign_message(encode_typed_data(full_message=full)).signature
    v, r, s = sig[64], sig[:32], sig[32:64]
    fn = token.permit(chain.seller, chain.escrow.address, 1_234, deadline, v, r, s)
    chain.send(fn, chain.admin)  # the operator submits it
    assert token.allowance(chain.seller, chain.escrow.address).call() == 1_234
    assert token.nonces(chain.seller).call() == 1


def test_burn_needs_the_escrow_role(chain, reverts):
    token = chain.token.functions
    chain.enroll_producer(chain.seller_meter, chain.seller)
    chain.mint(chain.seller_meter, 100)
    with reverts("AccessControlUnauthorizedAccount"):
        token.burn(10).transact({"from": chain.seller})
    role = token.ESCROW_ROLE().call()
    chain.send(token.grantRole(role, chain.seller), chain.admin)
    chain.send(token.burn(10), chain.seller)
    assert token.balanceOf(chain.seller).call() == 90
    assert token.totalSupply().call() == 90


@pytest.mark.parametrize("rated", [PRODUCER_W, MAX_RATED_W])
def test_ratings_up_to_the_maximum_are_accepted(chain, rated):
    chain.enroll(chain.seller_meter, chain.seller, PRODUCER, rated)
    assert chain.token.functions.meterOf(chain.seller_meter).call()[2] == rated
