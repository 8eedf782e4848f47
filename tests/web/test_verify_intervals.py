"""`gridbid verify` and `gridbid settle-interval` against a portal running the interval market:
two producers and three consumers trade through standing orders for a few intervals, their
positions settle on chain; the published intervals agree with the chain, an interval altered
afterwards does not; a stranger resending a published batch after the window pays no one
twice."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from tests.marketplace.common import (
    ETH,
    PEOPLE,
    community,
    drained,
    next_boundary,
    settle,
)
from web.cli import main

# The test steps the interval market itself (the loop's first pass is an hour away); a hand-
# moved interval takes seconds of block time. SETTLE_WH 1: every accounted fill is due at once.
# No rate limit on /rpc: the audit reads every block with an event through it.
PORTAL = {"PARTICIPANTS": PEOPLE, "SETTLE_WH": 1, "INTERVAL_TICK_S": 3600,
          "INTERVAL_WALL_S": 120, "RPC_RATE_PER_S": 100_000}


def verify(capsys, *args):
    code = main(["verify", *args])
    return code, capsys.readouterr().out.strip().splitlines()


@pytest.fixture
def traded(runtime, clock, server):
    """Two producers and three consumers trade through standing orders for a few intervals,
    then a batch of their positions is mined."""
    community(runtime, clock)
    for _ in range(3):
        next_boundary(runtime, clock)
        drained(runtime)
    next_boundary(runtime, clock)
    settle(runtime)
    return {"url": server, "runtime": runtime}


@pytest.mark.parametrize("app", [PORTAL], indirect=True)
def test_the_interval_market_agrees_and_an_altered_interval_does_not(traded, capsys, tmp_path):
    saved = tmp_path / "intervals.json"
    code, lines = verify(capsys, "--portal", traded["url"], "--save-intervals", str(saved))
    assert code == 0, lines
    counts = {part.split()[1]: int(part.split()[0])
              for part in lines[-1].removesuffix(" agree").split(", ")}
    assert counts["intervals"] >= 2 and counts["positions"] >= 2

    published = json.loads(saved.read_text())
    cleared = next(i for i in published if i["price_wei"] is not None and i["fills"])
    cleared["price_wei"] = str(int(cleared["price_wei"]) + 1)
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(published))
    code, lines = verify(capsys, "--portal", traded["url"], "--intervals", str(altered))
    assert code == 1
    assert f"interval: interval {cleared['n']}: published price" in "\n".join(lines)


@pytest.mark.parametrize("app", [PORTAL], indirect=True)
def test_anyone_may_resend_a_published_batch_and_nothing_is_paid_twice(traded, capsys, tmp_path):
    runtime, url = traded["runtime"], traded["url"]
    ledger = runtime.ledger
    assert main(["settle-interval", "--portal", url]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert listed and all(line.endswith(", mined, signed") for line in listed), listed
    # "batch 3: through interval n, 4 positions, mined, signed": one with positions.
    batch_id = next(int(line.split()[1].rstrip(":")) for line in listed
                    if int(line.split(", ")[1].split()[0]) > 0)
    stranger = Account.create()
    ledger.fund(stranger.address, ETH)
    key = tmp_path / "key"
    key.write_text(stranger.key.hex())
    args = ["settle-interval", "--portal", url, "--batch", str(batch_id), "--key", str(key)]
    assert main(args) == 2
    assert "window for anyone to send this batch opens at" in capsys.readouterr().err
    window = ledger.intervals.parameters()["anyone_after_s"]
    runtime.backend.time_travel(ledger.head_timestamp() + window + 1)
    runtime.backend.mine()
    owed = {e["args"]["account"]: ledger.owed_to(e["args"]["account"])
            for e in ledger.intervals.events(0) if e["event"] == "PositionSettled"}
    assert main(args) == 1  # settled already: every position refused, nothing paid again
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].endswith(" positions settled") and " 0 of " in lines[-1]
    # Buys were settled through these intervals already; sells find the pool empty.
    reasons = {(line.split()[1], line.split()[-1]) for line in lines[:-1]}
    assert ("buy", "NOT_AFTER_LAST") in reasons and reasons <= {
        ("buy", "NOT_AFTER_LAST"), ("sell", "NOT_AFTER_LAST"), ("sell", "POOL_SHORT")}, lines
    assert {a: ledger.owed_to(a) for a in owed} == owed
