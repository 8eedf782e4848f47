"""A shortened simulated day through the real stack: its books reconcile, its report exists."""

from __future__ import annotations

import re

from simulation.driver import Simulation
from simulation.plan import Plan


def test_a_short_day_reconciles_and_writes_its_report(tmp_path):
    lines: list[str] = []
    plan = Plan(producers=2, consumers=2, hours=2, start_hour=11, speed=600,
                out=tmp_path / "report")
    books, summary = Simulation(plan, progress=lines.append).run()

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
