"""Shared fixtures: a running portal on the embedded chain with emulated boards over ptys."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gridbid_client.transport import FlaskTransport
from marketplace.clock import ManualClock
from tests.common import signed_in
from tests.services import postgres_server, postgres_url, redis_url  # noqa: F401 (fixtures)

# The slowest modules (`--durations`, 2 xdist workers), slowest first. Under loadscope a
# module runs on one worker; xdist's own order (most tests first, which setup.cfg turns off
# with --no-loadscope-reorder) ran these one-test modules last, so the other worker idled
# while the last of them ran. Scheduled first, they overlap, and small modules fill the end.
SLOW_FIRST = (
    "tests/web/test_local_bridge_workers.py",  # 68-94 s (issue 16's one-bridge handover)
    "tests/simulation/test_chaos_rewind.py",
    "tests/simulation/test_chaos.py",
    "tests/simulation/test_simulate.py",
    "tests/marketplace/test_crash.py",
    "tests/contracts/test_properties.py",
    "tests/web/test_bridge_failover.py",
    "tests/contracts/test_evm_sets.py",
    "tests/web/test_verify.py",
    "tests/web/test_workers.py",
    "tests/web/test_pages.py",
    "tests/web/test_machine_nodes.py",  # ~120 s: a bridge process beside `gridbid chain join`
    "tests/geth_private/test_network_cli.py",  # ~75 s: three machines of `gridbid chain` runs
    "tests/web/test_pages_axe.py",  # ~50 s: 10 views x 2 widths of axe-core in one portal
    "tests/web/test_pages_wording.py",  # issue 17's, 45-70 s each alone
    "tests/web/test_keyboard_trade.py",
    "tests/web/test_refusal_wording.py",
    "tests/marketplace/test_funds.py",
    "tests/web/test_pages_assets.py",
    "tests/firmware/test_avr_sim.py",  # issue 18's simulated AVR, ~22 s
    "tests/web/test_bus_check.py",
    "tests/contracts/test_gas.py",
    # 25-90 s each in a run on a loaded machine (CI did not list them)
    "tests/geth_private/test_cli.py",
    "tests/web/test_remote_bridge.py",
    "tests/web/test_verify_intervals.py",
    "tests/firmware_bridge/test_bridge_cli.py",
    "tests/marketplace/test_parties.py",
    "tests/web/test_automatic_trading.py",
    "tests/web/test_serve_nginx.py",
    "tests/web/test_local_bridge.py",
    "tests/web/test_local_bridge_keeper.py",  # ~50 s, 15 s of it PostgreSQL's start
    "tests/marketplace/test_intervals_closing.py",
    "tests/marketplace/test_relays_back.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run modules slowest first: SLOW_FIRST, then the rest by their number of tests."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    rank = {path: at for at, path in enumerate(SLOW_FIRST)}
    ordered = sorted(modules, key=lambda path: (rank.get(path, len(rank)), -len(modules[path])))
    items[:] = [item for path in ordered for item in modules[path]]  # a module's own order kept


@pytest.fixture
def clock() -> ManualClock:
    """A hand-driven clock for auction deadlines, starting at the real time."""
    return ManualClock(start=time.time())


@pytest.fixture
def app(request, tmp_path, clock) -> Iterator:
    """The portal with its runtime started: a chain (embedded unless parametrized with a URI),
    the contracts, three emulated boards."""
    from web import create_app, start_runtime

    # Parametrized with a chain URI, or with a dict of settings to change.
    param = getattr(request, "param", "embedded://")
    overrides = param if isinstance(param, dict) else {"CHAIN_URI": param}
    app = create_app(
        {
            "TESTING": True,
            "CHAIN_URI": "embedded://",
            "CHAIN_FALLBACK": False,
            "SECRET_KEY": "test",
            "DEMO_ACCOUNTS": True,  # alice, bob, carol with their boards (off by default)
            "DATA_DIR": str(tmp_path / "var"),
            "SCRYPT_N": 2**10,  # cheap keystores; the portal default is geth's 2**18
            "CLOCK": clock,
            "EMULATOR_SPEED": 600.0,
            "TICK_S": 0.05,
            "EVENT_POLL_S": 0.1,
            "WALLET_PUSH_S": 0.2,
            **overrides,
        }
    )
    runtime = start_runtime(app)
    yield app
    runtime.stop()


@pytest.fixture
def runtime(app):
    """The started runtime of the app fixture."""
    from web.state import portal

    return portal(app).runtime


@pytest.fixture
def login(app, runtime):
    """login(name) -> a Flask test client signed in as that demo account.

    Signed in as the page does it: the key, read from the tests' cheap keystore, signs the
    portal's Sign-In with Ethereum message here; the portal never sees it. `client.signer` is
    the gridbid_client.Client on the same session, for what must be signed (bids, txs).
    """

    def _login(name: str):
        client = app.test_client()
        demo = {a["name"]: a for a in runtime.demo_accounts + runtime.admin_accounts}[name]
        key = runtime.keystore.unlock(demo["address"], demo["passphrase"])
        client.signer = signed_in(FlaskTransport(client), key)
        client.environ_base["HTTP_X_CSRF_TOKEN"] = client.signer.csrf
        return client

    return _login


@pytest.fixture
def server(app):
    """The app served over HTTP on a free loopback port (werkzeug, threads, websockets)."""
    import threading

    from werkzeug.serving import make_server

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
