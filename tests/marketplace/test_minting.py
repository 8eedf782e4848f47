"""Minting from signed readings: the operator sends them in batches; meters need no Ether."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from firmware_bridge.signing import sign_reading
from geth_private.keystore import MachineKeys
from marketplace.metering import Minting
from tests.common import wait_for
from tests.marketplace.common import ready


def test_meters_hold_no_ether_and_tokens_follow_what_the_meter_signed(runtime):
    """F2: each hello with a fresh meter had the portal fund it 10 ETH (meters sent their own
    transactions); now the operator sends the meters' signed readings and nothing funds them."""
    people = ready(runtime, wh=60)
    ledger = runtime.ledger
    for participant in runtime.store.participants():
        assert ledger.eth_balance(participant["meter_address"]) == 0
    alice = people["alice"].address
    meter_address = runtime.store.participant(alice)["meter_address"]
    minted = ledger.meter_of(meter_address)
    # What was minted is what the meter signed since its baseline (the first reading after
    # enrollment, which mints nothing), never more (later readings only add to it).
    (baseline,) = ledger.token.events.MeterBaseline().get_logs(
        from_block=0, argument_filters={"meter": meter_address})
    assert minted["owner"] == alice
    assert minted["last_reading_wh"] - baseline["args"]["readingWh"] == ledger.token_balance(alice)
    assert minted["last_reading_wh"] <= runtime.board_router.signed_reading("pv-alice").wh_in


def test_a_reading_the_token_refuses_is_logged_and_mints_nothing(app, runtime, caplog):
    ready(runtime, wh=10)
    ledger = runtime.ledger
    meter = runtime.board_router.signed_reading("pv-alice").meter
    key = MachineKeys(Path(app.config["DATA_DIR"]) / "meters", app.config["SCRYPT_N"]).get(
        "pv-alice")  # the portal's own meter key of alice's board
    assert key.address == meter
    minting = Minting(ledger, batch_wh=1)  # a second minter of our own, beside the market's
    minting.add_producer("pv-alice", meter)
    # Signed by the real meter key, but an hour ahead of the chain: "from the future".
    ahead = sign_reading(key, ledger.reading_domain(), 10**6, 0, int(time.time()) + 3600)
    before = ledger.meter_of(meter)["last_reading_wh"]
    with caplog.at_level(logging.WARNING, logger="marketplace.metering"):
        minting.step({"pv-alice": ahead})
        wait_for(lambda: minting.step({}) or "timestamp in the future" in caplog.text,
                 what="the refusal logged")
    assert ledger.meter_of(meter)["last_reading_wh"] < before + 10**6
