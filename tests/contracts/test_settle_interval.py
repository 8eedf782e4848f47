"""`gridbid settle-interval`'s sending on the embedded chain: a stranger sends a batch the
operator signed and published, once the window passed; before it, a batch someone else signed
and a batch altered after signing are refused with a sentence."""

from __future__ import annotations

import copy

import pytest
from eth_account import Account

from contracts.bindings import sign_batch
from geth_private import TxManager, backend_from_uri
from marketplace.audit.settle import SettleError, send_published
from marketplace.audit.signed_batch import BatchError, published_batch
from marketplace.contract_enums import EscrowMarket
from marketplace.ledger import Ledger

from .common import (
    COMMUNITY_DEPOSIT,
    DEAL_DURATION,
    FILL_PRICE,
    LEDGER_WALL_S,
    MAX_RATED_W,
    NOTICE,
    later,
    ledger_community,
)

ETH = 10**18
WINDOW = 600  # anyoneAfterS


def position_json(position, side):
    """A position as the portal publishes it in GET /api/intervals/batches."""
    return {"side": side, "account": position.account,
            "order": {k: str(v) if isinstance(v, int) else v for k, v in position.order.items()},
            "order_sig": "0x" + position.order_sig.hex(), "closing": position.closing.to_json(),
            "baseline": position.baseline.to_json() if position.baseline else None,
            "from_interval": position.from_interval, "to_interval": position.to_interval,
            "filled_intervals": position.filled_intervals, "wh": position.wh,
            "wei": str(position.wei)}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """A deployed chain with a seller and a buyer whose four intervals are batched, signed by
    the operator and published, but not sent."""
    with backend_from_uri("embedded://", str(tmp_path_factory.mktemp("chain"))) as node:
        ledger = Ledger(TxManager(node), node.faucet())
        ledger.deploy(NOTICE, DEAL_DURATION, MAX_RATED_W, interval_s=900,
                      interval_wall_s=LEDGER_WALL_S, anyone_after_s=WINDOW)
        community = ledger_community(node, ledger)
        stranger = Account.create()
        ledger.fund(stranger.address, ETH)
        batch = community.four_intervals()
        signed = ledger.intervals.sign(batch)
        entry = {"id": 1, "through_n": batch.through_interval, "status": "failed", "tx_hash": None,
                 "batch": {"positions": [position_json(batch.buys[0], "buy"),
                                         position_json(batch.sells[0], "sell")]},
                 "operator_sig": "0x" + signed.operator_sig.hex()}
        yield {"node": node, "ledger": ledger, "entry": entry, "batch": batch,
               "stranger": stranger, "buyer": community.buyer, "seller": community.seller,
               "domain": ledger.intervals.domain()}


def test_the_published_batch_is_the_one_the_operator_signed(market):
    rebuilt = published_batch(market["entry"])
    assert rebuilt.positions_hash() == market["batch"].positions_hash()
    unsigned = {**market["entry"], "operator_sig": None}
    with pytest.raises(BatchError, match="carries no operator signature"):
        published_batch(unsigned)


def test_a_stranger_settles_a_signed_batch_once_the_window_passed(market):
    ledger, stranger, entry = market["ledger"], market["stranger"], market["entry"]
    settlement = ledger.intervals.address
    # Before the window: the contract says when it opens, nothing is sent.
    with pytest.raises(SettleError, match="window for anyone to send this batch opens at"):
        send_published(ledger.w3, settlement, entry, stranger)
    # Signed by someone who is not the operator.
    forged = copy.deepcopy(entry)
    batch = market["batch"]
    forged["operator_sig"] = "0x" + sign_batch(stranger, batch.through_interval,
                                               batch.positions_hash(), market["domain"]).hex()
    with pytest.raises(SettleError, match="not signed by the settlement's operator"):
        send_published(ledger.w3, settlement, forged, stranger)
    # Altered after the operator signed it: the buyer's payment halved.
    altered = copy.deepcopy(entry)
    altered["batch"]["positions"][0]["wei"] = str(FILL_PRICE // 2)
    with pytest.raises(SettleError, match="not signed by the settlement's operator"):
        send_published(ledger.w3, settlement, altered, stranger)

    later(market["node"], ledger, WINDOW)
    lines, settled_all = send_published(ledger.w3, settlement, entry, stranger)
    assert settled_all, lines
    assert lines[0].startswith("settled: buy ") and lines[0].endswith(f"1000 Wh, {FILL_PRICE} wei")
    assert lines[1].startswith("settled: sell ")
    assert lines[-1].endswith("2 of 2 positions settled")
    buyer, seller = market["buyer"].address, market["seller"].address
    assert ledger.escrow_free(buyer, EscrowMarket.COMMUNITY) == COMMUNITY_DEPOSIT - FILL_PRICE
    assert ledger.owed_to(seller) == FILL_PRICE
    # Sent again: both positions are refused (already settled), nothing is paid twice.
    lines, settled_all = send_published(ledger.w3, settlement, entry, stranger)
    assert not settled_all and lines[-1].endswith("0 of 2 positions settled")
    assert ledger.owed_to(seller) == FILL_PRICE
