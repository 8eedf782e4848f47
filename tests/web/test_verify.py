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
# deal's block time. No soft close, so the 12 s auction ends when it says.
PORTAL = {"CHAIN_URI": "embedded://", "LOAD_W": 30, "RPC_RATE_PER_S": 100_000,
          "CLOCK": SystemClock(), "SOFT_CLOSE_S": 0}


@pytest.fixture
def auctioned(app, runtime, server):
    """A 40 Wh auction: bob bids, carol outbids him and wins; the deal opens on the escrow."""
    people = ready(runtime, wh=60)
    listing = people["alice"].list(40, PRICE_BOB, 12)
    people["bob"].bid(listing["id"], PRICE_BOB)
    people["carol"].bid(listing["id"], PRICE_CAROL)
    deal = wait_for(lambda: next((d for d in runtime.market.deals()
                                  if d["listing_id"] == listing["id"] and d["chain_deal_id"]),
                                 None), timeout=60, what="the deal to open on the escrow")
    return {"url": server, "listing": listing["id"], "people": people, "deal": deal}


@pytest.fixture
def traded(auctioned, runtime):
    """The auction's deal delivered in part (paid per step), then closed by carol."""
    market, deal_id = runtime.market, auctioned["deal"]["id"]
    wait_for(lambda: int(market.deal(deal_id)["paid_wei"]) > 0, timeout=60,
             what="a paid delivery step")
    try:
        auctioned["people"]["carol"].close(deal_id)
    except Exception:  # noqa: BLE001 -- it completed first: closed all the same
        pass
    wait_for(lambda: market.deal(deal_id)["status"] == DealState.CLOSED, timeout=60,
             what="the deal to close")
    return auctioned


def verify(capsys, *args):
    """(exit code, printed lines) of `gridbid verify` with these arguments."""
    code = main(["verify", *args])
    return code, capsys.readouterr().out.strip().splitlines()


@pytest.mark.parametrize("app", [PORTAL], indirect=True, ids=["embedded"])
def test_a_delivered_auction_agrees(traded, capsys):
    code, lines = verify(capsys, "--portal", traded["url"])
    assert code == 0, lines
    assert lines[-1].endswith(" agree")
    counts = {part.split()[1]: int(part.split()[0])
              for part in lines[-1].removesuffix(" agree").split(", ")}
    assert counts["auctions"] == 1
    assert counts["mints"] > 0 and counts["deliveries"] > 0  # alice's tokens, carol's energy


@pytest.mark.parametrize("app", [PORTAL], indirect=True)
def test_an_altered_book_and_a_passed_over_bid_are_caught(auctioned, capsys, tmp_path):
    url, listing_id = auctioned["url"], auctioned["listing"]
    alice = auctioned["people"]["alice"]
    _book_is_public_and_paged(url, alice.address, alice.list(10, PRICE_BOB, 600)["id"])
    saved = tmp_path / "book.json"
    code, lines = verify(capsys, "--portal", url, "--save-book", str(saved))
    assert code == 0, lines

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
    assert any(line.startswith(f"auction: deal {auctioned['deal']['chain_deal_id']}: price ")
               for line in lines)  # nor is the deal's price the (altered) bid's
    assert lines[-1].startswith("2 disagreements in 1 auctions")
    winner["bid"]["priceWeiPerKWh"] = str(PRICE_CAROL)

    # 2. A higher bid, signed by bob and covered by his deposit, that the operator passed over.
    bob = auctioned["people"]["bob"]
    own = next(b for b in entry["bids"] if b["bidder"] == bob.address)
    higher = {**own["bid"], "priceWeiPerKWh": str(3 * PRICE_BOB), "nonce": "424242"}
    typed = parse_book([{"listings": [{**entry, "bids": [{**own, "bid": higher}]}]}])
    chain = requests.get(f"{url}/api/chain", timeout=10).json()
    signature = sign_bid(bob.account, chain["chain_id"], chain["contracts"]["EnergyEscrow"],
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


def _book_is_public_and_paged(url, seller, second):
    """GET /api/book answers without a session, a page of listings at a time; bad paging
    parameters are a 400 that says which."""
    whole = requests.get(f"{url}/api/book", timeout=10).json()
    sold, still_open = whole["listings"]
    assert whole["next"] is None and len(sold["bids"]) == 2 and still_open["id"] == second
    assert sold["offer"]["seller"] == seller and still_open["bids"] == []
    first = requests.get(f"{url}/api/book?limit=1", timeout=10).json()
    assert first["listings"] == [sold] and first["next"] == sold["id"]
    rest = requests.get(f"{url}/api/book?after={first['next']}&limit=1", timeout=10).json()
    assert rest["listings"] == [still_open] and rest["next"] is None
    for bad, field in (("limit=0", "limit"), ("limit=501", "limit"), ("after=x", "after")):
        answer = requests.get(f"{url}/api/book?{bad}", timeout=10)
        assert answer.status_code == 400 and field in answer.json()["error"]
