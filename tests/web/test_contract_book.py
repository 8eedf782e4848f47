"""The portal reuses its deployed contracts only when the escrow has its notice and duration."""

from __future__ import annotations

import json

import pytest

from geth_private import TxManager, backend_from_uri
from geth_private.anvil import find_anvil
from marketplace.ledger import Ledger
from marketplace.settings import Settings
from web.config import DEFAULTS
from web.runtime.chain import deploy_or_attach
from web.runtime.settings import market_settings

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="no anvil binary: `npm ci` installs it (a persistent chain)")


def deploy(ledger, node, book, notice, duration=3_600):
    """deploy_or_attach with the default maximum rated power."""
    deploy_or_attach(ledger, node, book, notice, duration, DEFAULTS["MAX_RATED_POWER_W"])


def test_a_changed_notice_or_duration_redeploys_and_equal_ones_attach(tmp_path):
    book = tmp_path / "contracts.json"
    with backend_from_uri("anvil://", str(tmp_path)) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        deploy(ledger, node, book, 100)
        first = json.loads(book.read_text())
        assert ledger.withdrawal_notice() == 100 and ledger.deal_duration() == 3_600
        assert ledger.max_rated_power_w() == DEFAULTS["MAX_RATED_POWER_W"]
        again = Ledger(TxManager(node), node.faucet())
        deploy(again, node, book, 100)
        assert again.addresses()["EnergyEscrow"] == first["EnergyEscrow"]
        changed = Ledger(TxManager(node), node.faucet())
        deploy(changed, node, book, 200)
        assert changed.addresses()["EnergyEscrow"] != first["EnergyEscrow"]
        assert changed.withdrawal_notice() == 200
        assert json.loads(book.read_text())["EnergyEscrow"] == changed.escrow.address
        longer = Ledger(TxManager(node), node.faucet())
        deploy(longer, node, book, 200, 7_200)
        assert longer.addresses()["EnergyEscrow"] != changed.escrow.address
        assert longer.deal_duration() == 7_200
        # An escrow of another build (no withdrawalNotice() or dealDuration()) is stale too.
        book.write_text(json.dumps({**first, "EnergyEscrow": first["EnergyToken"]}))
        old = Ledger(TxManager(node), node.faucet())
        deploy(old, node, book, 200)
        assert old.addresses()["EnergyEscrow"] not in (first["EnergyToken"],
                                                       changed.escrow.address)
        assert old.withdrawal_notice() == 200


def test_the_notice_outlasts_every_bid_and_follows_the_config():
    settings = market_settings(DEFAULTS)
    limits = settings.limits
    assert limits.max_duration_s == 24 * 3600
    # Strictly longer than the latest a bid's deal can open: one second more.
    assert settings.escrow_notice_s() == (
        limits.max_duration_s + limits.soft_close_cap_s + settings.bid_validity_s + 1
    ) == 24 * 3600 + 60 + 3600 + 1
    short = market_settings({**DEFAULTS, "MAX_DURATION_S": 120, "SOFT_CLOSE_CAP_S": 5})
    assert short.limits.max_duration_s == 120
    assert short.escrow_notice_s() == 120 + 5 + Settings().bid_validity_s + 1
