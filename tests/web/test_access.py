"""Safe defaults: demo accounts only when asked, and from this machine only; the admin's secret."""

from __future__ import annotations

import argparse
import logging

import pytest
from flask import Flask

from web.access import DemoLoginRefused, client_address, is_loopback, refuse_demo_beyond_loopback
from web.cli import _print_accounts, run_overrides

REMOTE = "203.0.113.9"  # TEST-NET-3: a client on the internet


def _config(tmp_path, **extra):
    return {"TESTING": True, "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
            "SECRET_KEY": "test", "DATA_DIR": str(tmp_path / "var"), "SCRYPT_N": 2**10, **extra}


def _whoami_app(tmp_path, hops: int) -> Flask:
    """A portal (runtime not started) with a route that answers the client's address."""
    from web import create_app

    app = create_app(_config(tmp_path, PROXY_HOPS=hops))
    app.add_url_rule("/whoami", "whoami", client_address)
    return app


@pytest.mark.parametrize(("addr", "local"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("10.0.0.2", False), ("192.168.1.20", False),
    (REMOTE, False), ("::ffff:203.0.113.9", False), ("2001:db8::1", False),
    ("localhost", False), ("", False), ("127.0.0.1, 10.0.0.1", False),
])
def test_loopback_is_this_machine_only(addr, local):
    assert is_loopback(addr) is local


def test_a_spoofed_forwarded_for_is_ignored_unless_a_proxy_is_trusted(tmp_path):
    direct = _whoami_app(tmp_path / "a", hops=0).test_client()
    spoofed = {"X-Forwarded-For": "127.0.0.1"}
    # No proxy trusted (the default): the peer's address stands, whatever the header says.
    assert direct.get("/whoami", environ_base={"REMOTE_ADDR": REMOTE},
                      headers=spoofed).text == REMOTE
    behind = _whoami_app(tmp_path / "b", hops=1).test_client()
    # One proxy (nginx on this machine) trusted: the client it names is the client ...
    assert behind.get("/whoami", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                      headers={"X-Forwarded-For": REMOTE}).text == REMOTE
    # ... and only the hop it added counts: what the client itself put first is not believed.
    assert behind.get("/whoami", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                      headers={"X-Forwarded-For": f"127.0.0.1, {REMOTE}"}).text == REMOTE


def test_demo_logins_are_refused_beyond_loopback(app, runtime):
    people = {a["name"]: a["address"] for a in runtime.demo_accounts}
    admin = runtime.admin_accounts[0]["address"]

    def check(address, remote_addr, headers=None, hops=0):
        app.config["PROXY_HOPS"] = hops
        with app.test_request_context(environ_base={"REMOTE_ADDR": remote_addr},
                                      headers=headers or {}):
            refuse_demo_beyond_loopback(address)

    check(people["bob"], "127.0.0.1")  # from this machine: allowed
    check(people["bob"], "::1")
    check(admin, REMOTE)  # the admin's passphrase is its own: not a demo account
    for remote_addr, headers, hops in [
        (REMOTE, {}, 0),
        (REMOTE, {"X-Forwarded-For": "127.0.0.1"}, 0),  # spoofed, no proxy trusted
        # A proxy on this machine that the config does not trust: every client looks local,
        # but its header says the request came from further away.
        ("127.0.0.1", {"X-Forwarded-For": REMOTE}, 0),
        ("127.0.0.1", {"X-Real-IP": REMOTE}, 0),
    ]:
        with pytest.raises(DemoLoginRefused, match="only from this machine") as refused:
            check(people["bob"].lower(), remote_addr, headers, hops)
        assert refused.value.status == 403


def test_without_the_setting_there_are_no_demo_accounts(tmp_path):
    from web import DEFAULTS, create_app, start_runtime

    assert DEFAULTS["DEMO_ACCOUNTS"] is False and DEFAULTS["PROXY_HOPS"] == 0
    runtime = start_runtime(create_app(_config(tmp_path)))
    try:
        assert runtime.demo_accounts == [] and runtime.store.participants() == []
        assert runtime.accounts.address_of("alice") is None
        assert runtime.boards() == []
        [admin] = runtime.admin_accounts  # the operator's login is always made
        assert admin["name"] == "admin" and admin["passphrase"]
        assert not runtime.is_demo(admin["address"])
    finally:
        runtime.stop()


def test_gridbid_run_turns_the_demo_on(monkeypatch):
    args = argparse.Namespace(demo=None, chain=None, data_dir=None, speed=None)
    monkeypatch.delenv("GRIDBID_DEMO_ACCOUNTS", raising=False)
    assert run_overrides(args)["DEMO_ACCOUNTS"] is True
    assert run_overrides(argparse.Namespace(**{**vars(args), "demo": False}))[
        "DEMO_ACCOUNTS"] is False
    monkeypatch.setenv("GRIDBID_DEMO_ACCOUNTS", "false")  # the environment is heard
    assert "DEMO_ACCOUNTS" not in run_overrides(args)


def test_the_admin_passphrase_is_printed_once_and_logged_nowhere(tmp_path, capsys, caplog):
    from web import create_app, start_runtime

    caplog.set_level(logging.DEBUG)
    first = start_runtime(create_app(_config(tmp_path, DEMO_ACCOUNTS=True)))
    try:
        _print_accounts(first)
        secret = first.admin_accounts[0]["passphrase"]
    finally:
        first.stop()
    printed = capsys.readouterr().out
    assert secret in printed and "shown this once" in printed
    assert "bob-demo" in printed and "from this machine" in printed
    assert secret not in caplog.text

    again = start_runtime(create_app(_config(tmp_path, DEMO_ACCOUNTS=True)))
    try:
        _print_accounts(again)
    finally:
        again.stop()
    later = capsys.readouterr().out
    assert secret not in later and "printed on its first run" in later
    assert again.is_demo(again.demo_accounts[0]["address"])
