"""The interval market's API through the Flask test client: standing orders set, changed and
cancelled by a consumer and a producer (signed here as their pages would), the refusals, and
the public interval endpoints once intervals have cleared."""

from __future__ import annotations

import pytest

from tests.common import Clearings, csrf_client, demo_key, sign_page_terms, wait_for
from web.extensions import socketio

ETH = 10**18
CAP = 2 * 10**16  # 0.02 ETH per kWh
FLOOR = 10**16


def _addresses(runtime) -> dict[str, str]:
    return {a["name"]: a["address"] for a in runtime.demo_accounts}


def _buy(**changes) -> dict:
    return {"kind": "buy", "cap_wei_per_kwh": str(CAP), "expected_wh": 20,
            "max_wh_per_interval": 50, "daily_budget_wei": str(ETH // 100), "valid_s": 86400,
            **changes}


def _sell(**changes) -> dict:
    return {"kind": "sell", "floor_wei_per_kwh": str(FLOOR), "reserve_wh": 100,
            "valid_s": 86400, **changes}


def _place(client, key, asked: dict, **tamper):
    """Ask for terms, sign them with key (fields changed after signing when tamper says so)."""
    terms = client.post("/api/orders/terms", json=asked)
    assert terms.status_code == 200, terms.get_json()
    order, signature = sign_page_terms(key, terms.get_json())
    return client.post("/api/orders", json={"kind": asked["kind"], "order": {**order, **tamper},
                                            "signature": signature})


def test_a_consumer_sets_changes_and_cancels_a_buy_order(app, runtime, login):
    carol, carol_key = login("carol"), demo_key(app.config["DATA_DIR"], "carol")
    alice_key = demo_key(app.config["DATA_DIR"], "alice")
    me = _addresses(runtime)["carol"]
    mine = carol.get("/api/orders/mine").get_json()
    assert mine["order"] is None and mine["mode"]["mode"] == "lots"
    assert 0 < mine["seconds_left"] <= mine["interval_s"] / mine["time_factor"]

    terms = carol.post("/api/orders/terms", json=_buy()).get_json()
    assert terms["primaryType"] == "BuyOrder"
    assert terms["domain"]["name"] == "gridbid IntervalSettlement"
    message = terms["message"]
    assert message["buyer"] == me and message["capWeiPerKWh"] == str(CAP)
    assert (message["expectedWh"], message["maxWhPerInterval"]) == ("20", "50")
    assert message["dailyBudgetWei"] == str(ETH // 100)

    # In the lot market a standing order is refused, saying what to do first.
    refused = _place(carol, carol_key, _buy())
    assert refused.status_code == 403 and "market-mode" in refused.get_json()["error"]
    switched = carol.post("/api/market-mode", json={"mode": "intervals"})
    # Asked for, or already carried out: the runtime's boundaries come every interval_s of
    # emulated time, and one may fall between the request and the answer's read.
    view = switched.get_json()
    assert switched.status_code == 200 and "intervals" in (view["requested"], view["mode"]), view

    placed = _place(carol, carol_key, _buy())
    assert placed.status_code == 201, placed.get_json()
    first = placed.get_json()
    assert first["status"] == "active" and first["order"]["capWeiPerKWh"] == str(CAP)

    # Changed: a newly signed order replaces the first.
    changed = _place(carol, carol_key, _buy(cap_wei_per_kwh=str(2 * CAP), expected_wh=30))
    assert changed.status_code == 201
    mine = carol.get("/api/orders/mine").get_json()
    assert mine["order"]["hash"] == changed.get_json()["hash"] != first["hash"]
    assert mine["order"]["order"]["capWeiPerKWh"] == str(2 * CAP)

    # Refused: a cap raised after signing, an order signed by someone else, a replay.
    tampered = _place(carol, carol_key, _buy(), capWeiPerKWh=str(10 * CAP))
    assert tampered.status_code == 403, tampered.get_json()
    # (The market clock stands still here: terms of equal limits would be the same order.)
    terms = carol.post("/api/orders/terms", json=_buy(expected_wh=25)).get_json()
    order, by_alice = sign_page_terms(alice_key, terms)
    forged = carol.post("/api/orders", json={"kind": "buy", "order": order, "signature": by_alice})
    assert forged.status_code == 403 and forged.get_json()["kind"] == "NotAllowed"
    order, signature = sign_page_terms(carol_key, terms)
    assert carol.post("/api/orders", json={"kind": "buy", "order": order,
                                           "signature": signature}).status_code == 201
    replay = carol.post("/api/orders", json={"kind": "buy", "order": order,
                                             "signature": signature})
    assert replay.status_code == 400 and "already" in replay.get_json()["error"]
    # A consumer cannot sell.
    assert carol.post("/api/orders/terms", json=_sell()).status_code == 403

    cancelled = carol.delete("/api/orders")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert carol.get("/api/orders/mine").get_json()["order"] is None
    again = carol.delete("/api/orders")
    assert again.status_code == 400 and "no active standing order" in again.get_json()["error"]


def test_a_producer_sets_and_cancels_a_sell_order(app, runtime, login, clock):
    alice, key = login("alice"), demo_key(app.config["DATA_DIR"], "alice")
    me = _addresses(runtime)["alice"]
    assert alice.post("/api/orders/terms", json=_buy()).status_code == 403  # producers sell
    by_soc = alice.post("/api/orders/terms", json=_sell(reserve_wh=None, reserve_soc=0.25))
    assert by_soc.status_code == 200
    battery_wh = runtime.market.settings.battery_wh
    assert by_soc.get_json()["message"]["reserveWh"] == str(round(0.25 * battery_wh))
    assert alice.post("/api/market-mode", json={"mode": "intervals"}).status_code == 200

    placed = _place(alice, key, _sell(max_wh_per_interval=40))
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()["order"]
    assert order["seller"] == me and order["floorWeiPerKWh"] == str(FLOOR)
    assert (order["reserveWh"], order["maxWhPerInterval"]) == ("100", "40")
    # At the next boundary the account is in the interval market; back to the lot market
    # only without a standing order.
    Clearings(runtime).pass_boundary(clock)
    assert alice.get("/api/orders/mine").get_json()["mode"]["mode"] == "intervals"
    back = alice.post("/api/market-mode", json={"mode": "lots"})
    assert back.status_code == 403 and "cancel your standing order" in back.get_json()["error"]
    assert alice.delete("/api/orders").get_json()["status"] == "cancelled"
    assert alice.post("/api/market-mode", json={"mode": "lots"}).status_code == 200


BAD = [  # (method, path, body, status, words of the sentence)
    ("post", "/api/orders/terms", {}, 400, "sell"),
    ("post", "/api/orders/terms", {"kind": "hold"}, 400, "sell"),
    ("post", "/api/orders/terms", _buy(cap_wei_per_kwh="abc"), 400, "price cap"),
    ("post", "/api/orders/terms", _buy(cap_wei_per_kwh="-5"), 400, "price cap"),
    ("post", "/api/orders/terms", _buy(cap_wei_per_kwh="١٢٣"), 400, "digits 0-9"),
    ("post", "/api/orders/terms", _buy(expected_wh=0), 400, "expected draw"),
    ("post", "/api/orders/terms", _buy(max_wh_per_interval=2**64), 400, "Wh per interval"),
    ("post", "/api/orders/terms", _buy(daily_budget_wei=[1]), 400, "daily budget"),
    ("post", "/api/orders/terms", _buy(valid_s=1), 400, "validity"),
    ("post", "/api/orders", {"kind": "buy"}, 400, "order"),
    ("post", "/api/orders", {"kind": "buy", "order": "x", "signature": "0x00"}, 400, "object"),
    ("post", "/api/orders", {"kind": "buy", "order": {}}, 400, "signature"),
    ("post", "/api/orders", {"kind": "buy", "order": {}, "signature": "0x12"}, 400, ""),
    ("post", "/api/market-mode", {"mode": "auction"}, 400, "lots"),
    ("post", "/api/market-mode", {}, 400, "intervals"),
    ("get", "/api/intervals?limit=0", None, 400, "limit"),
    ("get", "/api/intervals?limit=abc", None, 400, "limit"),
    ("get", "/api/intervals?limit=100000", None, 400, "limit"),
    ("get", "/api/intervals/mine?limit=-1", None, 400, "limit"),
    ("get", "/api/intervals/123456789012345678901234567890", None, 404, "no interval"),
    ("get", "/api/intervals/١٢", None, 404, ""),
]


def test_bad_input_is_a_clear_refusal_never_a_500(app, login):
    carol = login("carol")
    for method, path, body, status, words in BAD:
        answer = getattr(carol, method)(path, json=body) if body is not None else \
            getattr(carol, method)(path)
        assert answer.status_code == status, (path, body, answer.get_json())
        error = answer.get_json()
        assert words in error["error"] and error["kind"], (path, body, error)
    # Without a session: 401 for one's own things; without the CSRF token: 403, nothing done.
    anonymous = csrf_client(app)
    for method, path in (("get", "/api/orders/mine"), ("post", "/api/orders"),
                         ("delete", "/api/orders"), ("get", "/api/intervals/mine"),
                         ("post", "/api/market-mode"), ("post", "/api/orders/terms")):
        assert getattr(anonymous, method)(path, json={}).status_code == 401, path
    refused = carol.delete("/api/orders", headers={"X-CSRF-Token": "forged"})
    assert refused.status_code == 403 and refused.get_json()["kind"] == "CsrfRefused"


@pytest.mark.parametrize("app", [{"LOAD_W": 60}], indirect=True)
def test_intervals_clear_and_are_published(app, runtime, login, clock):
    people = _addresses(runtime)
    alice, carol = login("alice"), login("carol")
    keys = {n: demo_key(app.config["DATA_DIR"], n) for n in ("alice", "carol")}
    public = app.test_client()  # nobody signed in
    clearings = Clearings(runtime)
    bob = login("bob")
    watchers = {name: socketio.test_client(app, namespace="/market", flask_test_client=client)
                for name, client in (("carol", carol), ("bob", bob))}
    # Own fills ride the per-user push, which serves accounts with a page open (/wallet).
    for client in (carol, bob):
        socketio.test_client(app, namespace="/wallet", flask_test_client=client)
    # A buy order is covered by the community market's escrow balance (market 1).
    carol.signer.deposit("0.5", market=1)
    wait_for(lambda: runtime.ledger.escrow_free(people["carol"], 1) > 0, what="carol's deposit")
    assert carol.get("/api/wallet").get_json()["community_free_wei"] == str(ETH // 2)
    wait_for(lambda: runtime.ledger.token_balance(people["alice"]) >= 60, what="alice's tokens")
    for client in (alice, carol):
        assert client.post("/api/market-mode", json={"mode": "intervals"}).status_code == 200
    assert _place(alice, keys["alice"], _sell(reserve_wh=0)).status_code == 201
    assert _place(carol, keys["carol"], _buy()).status_code == 201

    traded = []
    for _ in range(4):  # the switch takes a boundary, the orders' first clearing the next
        n = clearings.pass_boundary(clock)["n"]
        row = next(r for r in public.get("/api/intervals").get_json()["intervals"]
                   if r["n"] == n)
        if row["price_wei"] is not None:
            traded.append(row)
            break
    assert traded, "no interval cleared with a trade"
    n = traded[0]["n"]
    published = public.get(f"/api/intervals/{n}")
    assert published.status_code == 200
    view = published.get_json()
    assert view["n"] == n and view["price_wei"] is not None
    assert {o["kind"] for o in view["orders"]} == {"sell", "buy"}
    assert {f["address"] for f in view["fills"]} == {people["alice"], people["carol"]}
    assert FLOOR <= int(view["price_wei"]) <= CAP
    # Public history carries price and volume, no one's address.
    assert people["carol"] not in public.get("/api/intervals").get_data(as_text=True)

    fills = carol.get("/api/intervals/mine").get_json()
    assert [f["side"] for f in fills["fills"] if f["n"] == n] == ["buy"]
    assert "current" in fills and fills["seconds_left"] >= 0
    assert public.get("/api/intervals/mine").status_code == 401

    # Pushed: every market page hears each clearing; one's own fills only one's own pages.
    received: dict[str, list] = {name: [] for name in watchers}

    def heard(name, event):
        received[name].extend(watchers[name].get_received("/market"))
        return [e["args"][0] for e in received[name] if e["name"] == event]

    wait_for(lambda: any(f["n"] == n and f["side"] == "buy"
                         for e in heard("carol", "fills") for f in e["fills"]),
             what="carol's fill pushed to her pages")
    for name in ("carol", "bob"):
        news = wait_for(lambda name=name: [e for e in heard(name, "interval") if e["n"] == n],
                        what=f"interval {n} pushed to {name}")
        assert news[0]["price_wei"] == view["price_wei"] and news[0]["seconds_left"] >= 0
        assert not any(isinstance(v, (list, dict)) for v in news[0].values())  # no fills
    assert not any(e["fills"] for e in heard("bob", "fills"))  # bob traded nothing
