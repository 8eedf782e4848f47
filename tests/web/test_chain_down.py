"""A portal whose chain node is gone (a real anvil SIGKILLed): requests that need the chain
answer a clear 503, the rest go on, none answers 500, and what was accepted stays; anvil
restarted, the same requests go through."""

from __future__ import annotations

import signal
import time

import pytest

from geth_private.anvil import find_anvil
from tests.common import csrf_client, demo_key, sign_page_terms, wait_for
from web.errors import CHAIN_DOWN_MESSAGE

pytestmark = pytest.mark.skipif(find_anvil() is None,
                                reason="anvil not installed: `npm ci` installs it")

BUY = {"kind": "buy", "cap_wei_per_kwh": str(2 * 10**16), "expected_wh": 20,
       "max_wh_per_interval": 50, "daily_budget_wei": str(10**16), "valid_s": 86400}


def _kill_anvil(runtime) -> None:
    """SIGKILL the node once its periodic state dump holds what was done so far (a rewind is
    test_chaos_rewind's subject, not this one's), and wait for it to be gone."""
    done, state = time.time(), runtime.backend.state_path
    wait_for(lambda: state.exists() and state.stat().st_mtime > done, timeout=30)
    process = runtime.backend._process
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _restart_anvil(runtime) -> None:
    """Start anvil again on the same port (web3 providers made before reach it again)."""
    runtime.backend._process = None
    runtime.backend.start()


def _assert_503(response) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["error"] == CHAIN_DOWN_MESSAGE and body["kind"] == "ChainUnavailable"
    assert response.headers["Retry-After"] == str(body["retry_after_s"])


@pytest.mark.parametrize("app", ["anvil://"], indirect=True)
def test_requests_that_need_the_chain_answer_503_while_anvil_is_down(app, runtime, login):
    carol = login("carol")
    key = demo_key(app.config["DATA_DIR"], "carol")
    assert carol.post("/api/market-mode", json={"mode": "intervals"}).status_code == 200
    terms = carol.post("/api/orders/terms", json=BUY)
    assert terms.status_code == 200, terms.get_json()
    order, signature = sign_page_terms(key, terms.get_json())
    signed = {"kind": "buy", "order": order, "signature": signature}
    address = {a["name"]: a["address"] for a in runtime.demo_accounts}["alice"]

    _kill_anvil(runtime)
    try:
        # Sign-in needs no node (the chain id is known), so a participant can still log in.
        fresh = csrf_client(app)
        message = fresh.post("/api/login/message", json={"address": address})
        assert message.status_code == 200, message.get_json()
        _assert_503(carol.post("/api/orders", json=signed))  # the meter's enrolment: a read
        # No API page a signed-in participant may read answers 500 while the node is gone.
        for rule in app.url_map.iter_rules():
            if (rule.rule.startswith("/api/") and "GET" in rule.methods and not rule.arguments
                    and "stream" not in rule.rule):
                answer = carol.get(rule.rule)
                assert answer.status_code != 500, (rule.rule, answer.get_data(as_text=True))
        # Accepted before the node went: the switch to the interval market (asked or done).
        mode = carol.get("/api/orders/mine").get_json()["mode"]
        assert "intervals" in (mode["mode"], mode["requested"]), mode
    finally:
        _restart_anvil(runtime)

    placed = carol.post("/api/orders", json=signed)
    assert placed.status_code == 201, placed.get_json()
    assert carol.get("/api/orders/mine").get_json()["order"]["hash"] == placed.get_json()["hash"]
