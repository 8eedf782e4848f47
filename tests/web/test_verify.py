"""`gridbid verify` against a running portal: an auction with two bidders to a delivered deal
agrees; a book altered afterwards, or a higher covered bid the operator passed over, does not."""

from __future__ import annotations

import json

import pytest
import requests

from contracts.bindings import sign_bid
from marketplace.audit.book import parse_book
from marketplace.clock import SystemClock
from marketplace.states import DealState
from tests.common import wait_for
from tests.marketplace.common import ready
from web.cli import main

PRICE_BOB, PRICE_CAROL = 10**16, 2 * 10**16

# The audit reads every block with an event through the portal's /rpc: no rate limit here.
# The portal's clock is the chain's (wall time): the book's auction end is compared with the
# deal's block time. No soft close, so the 10 s auction ends when it says.
PORTAL = {"CHAIN_URI": "embedded://", "LOAD_W": 30, "RPC_RATE_PER_S": 100_000,
          "CLOCK": SystemClock(), "SOFT_CLOSE_S": 0}


@pytest.fixture
def traded(app, runtime, server):
    """A 40 Wh auction: bob bids, carol outbids him and wins; delivery is paid, then carol
    closes. The portal's URL and the sold listing's id."""
    people = ready(runtime, wh=60)
    listing = people["alice"].list(40, PRICE_BOB, 10)
    people["bob"].bid(listing["id"], PRICE_BOB)
    people["carol"].bid(listing["id"], PRICE_CAROL)
    market = runtime.market
    deal = wait_for(lambda: next((d for d in market.deals() if d["listing_id"] == listing["id"]
                                  and d["status"] == DealState.ACTIVE), None), timeout=60,
                    what="the deal to open")
    wait_for(lambda: int(market.deal(deal["id"])["paid_wei"]) > 0, timeout=60,
             what="a paid delivery step")
    try:
        people["carol"].close(deal["id"])
    except Exception:  # noqa: BLE001 -- it completed first: closed all the same
        pass
    wait_for(lambda: market.deal(deal["id"])["status"] == DealState.CLOSED, timeout=60,
             what="the deal to close")
    return {"url": server, "listing": listing["id"], "people": people}


def verify(capsys, *args):
    """(exit code, printed lines) of `gridbid verify` with these arguments."""
    code = main(["verify", *args])
    return code, capsys.readouterr().out.strip().splitlines()


@pytest.mark.parametrize("app", [PORTAL], indirect=True)
def test_a_delivered_auction_agrees_and_tampered_books_do_not(traded, capsys, tmp_path):
    url, listing_id = traded["url"], traded["listing"]
    saved = tmp_path / "book.json"
    code, lines = verify(capsys, "--portal", url, "--save-book", str(saved))
    assert code == 0, lines
    assert lines[-1].startswith("1 auctions, ") and lines[-1].endswith(" deliveries agree")
    mints = int(lines[-1].split(", ")[1].split()[0])
    assert mints > 0  # alice's tokens were minted from her meter's signed readings

    pages = json.loads(saved.read_text())
    entry = next(e for p in pages for e in p["listings"] if e["id"] == listing_id)
    winner = next(b for b in entry["bids"] if int(b["bid"]["priceWeiPerKWh"]) == PRICE_CAROL)

    # 1. The winning bid's price changed in the book: its signature no longer matches.
    winner["bid"]["priceWeiPerKWh"] = str(PRICE_CAROL * 2)
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(pages))
    code, lines = verify(capsys, "--portal", url, "--book", str(altered))
    assert code == 1
    assert f"book: listing {listing_id} bid {winner['id']}: not signed by" in "\n".join(lines)
    assert lines[-1].startswith("2 disagreements in 1 auctions")  # the book, and the deal's price
    winner["bid"]["priceWeiPerKWh"] = str(PRICE_CAROL)

    # 2. A higher bid, signed by bob and covered by his deposit, that the operator passed over.
    bob = traded["people"]["bob"]
    own = next(b for b in entry["bids"] if b["bidder"] == bob.address)
    higher = {**own["bid"], "priceWeiPerKWh": str(3 * PRICE_BOB), "nonce": "424242"}
    typed = parse_book([{"listings": [{**entry, "bids": [{**own, "bid": higher}]}]}])
    domain = requests.get(f"{url}/api/chain", timeout=10).json()
    signature = sign_bid(bob.account, domain["chain_id"], domain["contracts"]["EnergyEscrow"],
                         typed[0].bids[0].bid)
    entry["bids"].append({**own, "id": 999_999, "bid": higher,
                          "signature": "0x" + signature.hex(),
                          "accepted_at": winner["accepted_at"] - 0.5})
    ignored = tmp_path / "ignored.json"
    ignored.write_text(json.dumps(pages))
    code, lines = verify(capsys, "--portal", url, "--book", str(ignored))
    assert code == 1
    [line] = [line for line in lines if line.startswith("auction:")]
    assert f"went to bid {winner['id']}" in line and "bid 999999 of" in line
    assert "ranked higher and was covered at the close" in line


@pytest.mark.parametrize("app", [PORTAL], indirect=True)
def test_the_book_is_public_and_paged(traded, app):
    """GET /api/book answers without a session, a page of listings at a time."""
    url = traded["url"]
    whole = requests.get(f"{url}/api/book", timeout=10).json()
    [entry] = whole["listings"]
    assert whole["next"] is None and len(entry["bids"]) == 2
    assert entry["offer"]["seller"] == traded["people"]["alice"].address
    assert requests.get(f"{url}/api/book?after={entry['id']}", timeout=10).json() == {
        **whole, "listings": []}
    for bad in ("limit=0", "limit=501", "after=x"):
        answer = requests.get(f"{url}/api/book?{bad}", timeout=10)
        assert answer.status_code == 400 and "error" in answer.json()
