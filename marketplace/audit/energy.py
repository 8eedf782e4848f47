"""Checks of the energy the chain paid for: every mint within its meter's allowance and signed
by the meter; every delivery report signed by both deals' meters; the bus's sellers sent what
the buyers were paid for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from contracts.bindings import reading_typed_data, recover_typed
from marketplace.audit.events import Deal, Event, Mint, cost_wei
from marketplace.audit.findings import Call, Finding, short
from marketplace.contract_enums import MeterKind


def reading_signer(chain_id: int, token: str, reading: Mapping[str, Any], sig: bytes) -> str | None:
    """Who signed a meter reading in the token's domain (None when it cannot be told)."""
    return recover_typed(reading_typed_data(chain_id, token, dict(reading)), sig)


def check_mints(
    mints: Iterable[Mint], calls: Mapping[str, Call], chain_id: int, token: str
) -> list[Finding]:
    """Each EnergyMinted: a producer meter's, within rated power × time, counted on from the
    last mint, and from a reading its meter signed (re-checked from the transaction's input)."""
    found = []
    for mint in mints:
        a, where = mint.event.args, f"meter {short(mint.event.args['meter'])} mint at " \
                                    f"{mint.event.args['readingAt']}"
        problems = []
        if mint.kind != MeterKind.PRODUCER:
            problems.append("the meter is not an enrolled producer")
        elif a["owner"] != mint.owner:
            problems.append(f"minted to {short(a['owner'])}, not its owner {short(mint.owner)}")
        if a["wh"] > mint.allowed_wh:
            problems.append(f"{a['wh']} Wh is above its allowance of {mint.allowed_wh} Wh "
                            f"({mint.rated_power_w} W since {mint.previous_at})")
        if a["mintedTotalWh"] != mint.previous_wh + a["wh"] or a["readingWh"] < a[
                "mintedTotalWh"]:
            problems.append(f"the minted total {a['mintedTotalWh']} does not follow "
                            f"{mint.previous_wh} + {a['wh']} within the reading's {a['readingWh']}")
        if not mint.previous_at < a["readingAt"] <= mint.event.at:
            problems.append("the reading's time is not after the last one and before its block")
        problems += _mint_signed(mint.event, calls.get(mint.event.tx), chain_id, token)
        found += [Finding("mint", where, problem) for problem in problems]
    return found


def _signed_readings(call: Call) -> list[tuple[Mapping[str, Any], bytes]]:
    """The (reading, signature) pairs a minting call carried: mintReadings' arguments, or an
    interval batch's (settle) sellers' closing and baseline readings and lot sellers' mints."""
    if call.function == "mintReadings":
        return list(zip(*call.args, strict=False))
    batch = call.args[0]
    pairs = [(p[name], p[name + "Sig"]) for p in batch["sells"] for name in ("closing",
                                                                          "baseline")]
    return pairs + list(zip(batch["mints"], batch["mintSigs"], strict=False))


def _mint_signed(event: Event, call: Call | None, chain_id: int, token: str) -> list[str]:
    if call is None or call.function not in ("mintReadings", "settle"):
        return ["its transaction is not a mintReadings or settle call: the reading cannot be "
                "re-checked"]
    a = event.args
    for reading, sig in _signed_readings(call):
        if (reading["meter"], reading["whIn"], reading["timestamp"]) == (
                a["meter"], a["readingWh"], a["readingAt"]):
            if reading_signer(chain_id, token, reading, sig) == a["meter"]:
                return []
    return ["no reading signed by the meter in its transaction"]


def check_deliveries(
    deals: Iterable[Deal], calls: Mapping[str, Call], chain_id: int, token: str
) -> list[Finding]:
    """Each DeliveryStarted/DeliveryReported: both readings signed by the deal's meters, as the
    event says, in the deal's time; what it paid follows the buyer's meter and the price."""
    found = []
    for deal in deals:
        where = f"deal {deal.id}"
        events = ([deal.started] if deal.started else []) + deal.reports
        if deal.reports and deal.started is None:
            found.append(Finding("delivery", where, "paid without a baseline report"))
        for event in events:
            found += [Finding("delivery", f"{where} report in block {event.block}", problem)
                      for problem in _attested(deal, event, calls.get(event.tx), chain_id, token)]
        found += [Finding("delivery", where, p) for p in _payments(deal)]
    return found


def _attested(deal: Deal, event: Event, call: Call | None, chain_id: int, token: str) -> list[str]:
    """Why one report's readings do not attest it (nothing when they do)."""
    if call is None or call.function != "reportDelivery" or call.args[0] != deal.id:
        return ["its transaction is not this deal's reportDelivery: readings cannot be re-checked"]
    _, seller, seller_sig, buyer, buyer_sig = call.args
    a, problems = event.args, []
    for side, reading, sig, meter in (("seller", seller, seller_sig, deal.sellerMeter),
                                      ("buyer", buyer, buyer_sig, deal.buyerMeter)):
        if reading["meter"] != meter:
            problems.append(f"the {side}'s reading is from {short(reading['meter'])}, not the "
                            f"deal's meter {short(meter)}")
        elif reading_signer(chain_id, token, reading, sig) != meter:
            problems.append(f"the {side}'s reading is not signed by its meter {short(meter)}")
        if not deal.opened.at <= reading["timestamp"] <= min(deal.expiresAt, event.at):
            problems.append(f"the {side}'s reading at {reading['timestamp']} is outside the deal")
    if (buyer["whIn"], seller["whOut"], buyer["timestamp"], seller["timestamp"]) != (
            a["buyerWh"], a["sellerWh"], a["buyerAt"], a["sellerAt"]):
        problems.append("the event's counters or times differ from the signed readings")
    return problems


def _payments(deal: Deal) -> list[str]:
    """Why the deal's paid Wh and wei (and its close's refund) do not follow its buyer's meter
    and price (nothing when they do)."""
    base = deal.started.args["buyerWh"] if deal.started else 0
    done, paid, problems = 0, 0, []
    for event in deal.reports:
        a = event.args
        expected = min(max(0, a["buyerWh"] - base), deal.energyWh)
        if a["cumulativeWh"] != expected or a["stepWh"] != expected - done:
            problems.append(f"block {event.block} paid up to {a['cumulativeWh']} Wh; the buyer's "
                            f"meter counted {expected} Wh since the baseline")
        step_wei = cost_wei(deal.priceWeiPerKWh, a["cumulativeWh"]) - paid
        if a["stepWei"] != step_wei:
            problems.append(f"block {event.block} paid {a['stepWei']} wei for the step, "
                            f"not {step_wei}")
        done, paid = a["cumulativeWh"], paid + a["stepWei"]
    if deal.closed is not None:
        c = deal.closed.args
        refund = cost_wei(deal.priceWeiPerKWh, deal.energyWh) - paid
        if (c["deliveredWh"], c["paidWei"], c["refundedWei"]) != (done, paid, refund):
            problems.append(f"closed with {c['deliveredWh']} Wh delivered, {c['paidWei']} wei "
                            f"paid and {c['refundedWei']} refunded; its reports make {done} Wh, "
                            f"{paid} and {refund}")
    return problems


def check_bus(deals: Iterable[Deal], accuracy: float, floor_wh: int) -> list[Finding]:
    """Over each period where deals overlapped on the bus, the sellers' meters sent (whOut
    growth, per meter) at least what buyers were paid for, less the meters' accuracy and what
    flowed while one side's reading lagged the other's."""
    found = []
    for group in _overlapping([d for d in deals if d.started is not None and d.reports]):
        sent: dict[str, list[int]] = defaultdict(list)
        for deal in group:
            for event in [deal.started, *deal.reports]:
                sent[deal.sellerMeter].append(event.args["sellerWh"])
        sellers_wh = sum(max(values) - min(values) for values in sent.values())
        paid_wh = sum(d.reports[-1].args["cumulativeWh"] for d in group)
        lag_wh = sum(_lag_wh(d) for d in group)
        if sellers_wh < paid_wh * (1 - accuracy) - floor_wh - lag_wh:
            ids = ", ".join(str(d.id) for d in group)
            found.append(Finding("bus", f"deals {ids}", f"buyers were paid for {paid_wh} Wh but "
                                 f"the sellers' meters sent {sellers_wh} Wh"))
    return found


def _lag_wh(deal: Deal) -> float:
    """What the buyer's meter may have counted while the seller's readings did not look: the
    seconds the buyer's readings reach past the seller's at either end (plus a second each
    for whole-second timestamps), at the buyer's average rate."""
    first, last = deal.started.args, deal.reports[-1].args  # type: ignore[union-attr]
    seconds = max(1, last["buyerAt"] - first["buyerAt"])
    rate = max(0, last["buyerWh"] - first["buyerWh"]) / seconds
    unseen = max(0, last["buyerAt"] - last["sellerAt"] + 1) + max(
        0, first["sellerAt"] - first["buyerAt"] + 1)
    return rate * unseen


def _span(deal: Deal) -> tuple[int, int]:
    events = [deal.started, *deal.reports]
    times = [t for e in events if e for t in (e.args["buyerAt"], e.args["sellerAt"])]
    return min(times), max(times)


def _overlapping(deals: list[Deal]) -> list[list[Deal]]:
    """Deals grouped where their reading periods overlap (a deal alone is its own group)."""
    groups: list[list[Deal]] = []
    end = None
    for deal in sorted(deals, key=_span):
        start, stop = _span(deal)
        if end is None or start > end:
            groups.append([])
            end = stop
        groups[-1].append(deal)
        end = max(end, stop)
    return groups
