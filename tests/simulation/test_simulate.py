"""A shortened simulated day through the real stack, in both markets on the same seeded day:
its books reconcile, its report exists, and the weather and loads are the seed's."""

from __future__ import annotations

import json
import re

import pytest

from simulation.driver import Simulation
from simulation.metrics import FIELDS
from simulation.plan import Plan


def _day(tmp_path_factory, market: str, **size):
    lines: list[str] = []
    plan = Plan(**size, hours=2, start_hour=11, speed=600, market=market,
                out=tmp_path_factory.mktemp(market) / "report")
    books, summary = Simulation(plan, progress=lines.append).run()
    return books, summary, lines


@pytest.fixture(scope="module")
def lots_day(tmp_path_factory):
    return _day(tmp_path_factory, "lots", producers=2, consumers=2)


@pytest.fixture(scope="module")
def interval_day(tmp_path_factory):
    return _day(tmp_path_factory, "intervals", producers=2, consumers=3)


def test_a_short_lots_day_reconciles_and_writes_its_report(lots_day):
    books, summary, lines = lots_day

    assert books.ok, "\n".join(f"{c.what}: {c.left} vs {c.right} {c.unit}"
                               for c in books.failures())
    # Trade happened: the checks are not vacuous.
    delivered = [d for d in books.deals if d["delivered_wh"] > 0]
    assert len(delivered) >= 2 and books.total["delivered_wh"] >= 50
    total = books.total
    # Metered energy and tokens to the Wh: generated = minted; burned = delivered; the rest held.
    assert total["generated_wh"] == total["minted_wh"] > 0
    assert total["burned_wh"] == total["delivered_wh"]
    assert total["tokens_left_wh"] == total["minted_wh"] - total["burned_wh"]
    # Ether: what consumers paid is what producers received; each deal's payment is its price
    # times its delivery, rounded down by less than 1 wei per delivery step.
    assert total["paid_wei"] == total["received_wei"] > 0
    for deal in books.deals:
        exact = deal["price"] * deal["delivered_wh"] / 1000
        assert 0 <= exact - deal["paid_wei"] <= max(1, deal["steps_count"])
        if deal["meter_wh"] is not None:  # billed = the buyer meter's whole Wh, up to the lot
            assert deal["delivered_wh"] == int(min(deal["meter_wh"], deal["energy_wh"]) + 1e-6)
    # Seller meters minus buyer meters is the bus's line loss, to the meters' rounding.
    bus = books.bus
    assert abs(bus["seller_out_wh"] - bus["buyer_in_wh"] - bus["line_loss_wh"]) <= 0.005
    assert bus["seller_out_wh"] > bus["buyer_in_wh"] > 0

    for name in ("generation.png", "load.png", "prices.png", "ether.png"):
        png = summary.parent / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in summary.read_text()
    assert "Reconciliation holds" in summary.read_text()
    assert (summary.parent / "reconciliation.json").exists()
    assert any(re.match(r"\[\d\d:\d\d\] hour", line) for line in lines)


def test_a_short_interval_day_reconciles_interval_by_interval(interval_day):
    books, summary, lines = interval_day

    assert books.ok, "\n".join(f"{c.what}: {c.left} vs {c.right} {c.unit}"
                               for c in books.failures())
    kinds = {c.what.split(": ", 1)[-1].split(" of 0x")[0] for c in books.checks}
    # Every interval's identities were checked, not vacuously: trade happened and settled.
    for kind in ("sellers' meters out − buyers' meters in vs the bus's line loss",
                 "Σ payouts + dust vs Σ buyers' payments"):
        assert kind in kinds
    assert any("signed by its meter key" in c.what for c in books.checks)
    total = books.total
    assert total["billed_wh"] > 100 and total["settled_wh"] == total["billed_wh"]
    assert total["paid_wei"] > 0 and total["received_wei"] > 0
    assert total["settled_wei"] == total["paid_wei"] + total["received_wei"]
    figures = books.figures
    assert figures["market"] == "intervals" and figures["prices_wei"]
    assert figures["gas"]["day"]["settle"]["txs"] >= 1
    assert 0 < figures["totals"]["served_of_matchable"] <= 1.2
    assert "What the intervals market achieved" in summary.read_text()
    assert any(re.match(r"\[\d\d:\d\d\] hour .* intervals \d+", line) for line in lines)


def test_reconciliation_json_carries_the_purpose_of_every_participant(lots_day, interval_day):
    for _, summary, _ in (lots_day, interval_day):
        data = json.loads((summary.parent / "reconciliation.json").read_text())
        for row in [*data["rows"], data["total"]]:
            assert all(isinstance(row[key], int | float) for key in FIELDS), row
        consumers = [r for r in data["rows"] if r["role"] == "consumer"]
        assert all(r["wanted_wh"] > 0 for r in consumers)
        assert data["total"]["served_wh"] == pytest.approx(
            sum(r["served_wh"] for r in consumers), abs=0.01)
        assert data["market"]["totals"]["matchable_wh"] > 0


def test_one_seed_is_one_day_of_weather_and_loads_in_both_markets(lots_day, interval_day):
    lots, intervals = lots_day[0].figures["physics"], interval_day[0].figures["physics"]
    # The same seed's producers had the same sun, its consumers the same loads (to the bit),
    # whatever each market did with their relays (interval_day has one more consumer).
    for name, physics in lots.items():
        assert physics == intervals[name], name
    assert lots["producer1"]["pv_wh"] > 0 and lots["consumer1"]["wanted_wh"] > 0


def test_the_report_says_what_the_day_cost_the_machine(interval_day):
    """Clearing times, loop passes, settlement lag, memory and gas per block, from the run."""
    _, summary, _ = interval_day
    load = json.loads((summary.parent / "reconciliation.json").read_text())["market"]["load"]
    # Every boundary of the day was timed from the clock reaching it to its publication.
    assert load["clearing_ms"]["n"] >= 4 and load["clearing_ms"]["p50"] > 0
    assert load["loop_pass_ms"]["intervals"]["n"] > 0
    assert load["settlement_lag_wh"]["max"] > 0  # bought Wh waited for a batch at some point
    assert load["portal_rss_mb"]["p50"] > 50  # a Python process with web3 and py-evm loaded
    assert load["blocks"] > 0 and load["gas_per_block"]["max"] > 21_000
    assert load["failsafe_trips"] == 0
    assert "What the day cost the machine" in summary.read_text()
