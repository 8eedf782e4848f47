"""Helpers the tests share (Home Assistant's tests/common.py): fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    """Poll condition until it is truthy; fail the test with `what` after timeout seconds.

    The default is generous: it returns as soon as the condition holds, and the suite runs on
    every core of a machine other work shares (20 s was missed under xdist on a loaded box).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


def gridbid_here(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A short `gridbid` command (one that answers and exits) run in this process under env,
    as its console script would: its exit code and what it printed. A new interpreter per
    command cost ~3 s of imports under load; commands that keep running (`chain join`,
    `bridge`) stay processes of their own."""
    from web.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's refusals
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def csrf_client(app):
    """A test client that sends the session's CSRF token with every request, as the pages do."""
    client = app.test_client()
    client.environ_base["HTTP_X_CSRF_TOKEN"] = client.get("/api/csrf").get_json()["csrf"]
    return client


def csrf_session(url: str):
    """A requests.Session for a portal at url, sending the CSRF token as the pages do."""
    import requests

    session = requests.Session()
    session.headers["X-CSRF-Token"] = session.get(f"{url}/api/csrf", timeout=10).json()["csrf"]
    return session


def signed_in(target, key):
    """A gridbid_client.Client (URL or transport) signed in with this key (SIWE, signed here)."""
    from gridbid_client.client import Client

    client = Client(target, key)
    client.login()
    return client


def demo_key(data_dir, name: str):
    """A demo account's key, read from its (cheap) keystore in a portal's data directory."""
    import json

    from eth_account import Account

    address = json.loads((Path(data_dir) / "accounts.json").read_text())[name]
    keyfile = next((Path(data_dir) / "keystore").glob(f"UTC--*--{address[2:].lower()}"))
    return Account.from_key(Account.decrypt(json.loads(keyfile.read_text()), f"{name}-demo"))


def portal_login(url: str, name: str, data_dir):
    """A gridbid_client.Client signed in as a demo account of a portal running at url."""
    return signed_in(url, demo_key(data_dir, name))


def seated_logins(url: str, data_dir, timeout: float = 60.0,
                  names: tuple[str, ...] = ("alice", "bob")) -> tuple:
    """portal_login of each demo name once it is seated (its bridge claimed its board and its
    enrollment was mined: a sign-in is refused until then)."""
    from gridbid_client.client import ClientError

    def seated(name: str):
        try:
            return portal_login(url, name, data_dir)
        except ClientError:
            return None

    return tuple(wait_for(lambda n=n: seated(n), timeout=timeout, what=f"{n} to be seated")
                 for n in names)


def page_login(page, base: str, name: str, passphrase: str, path: str = "/login") -> None:
    """Log in through the page: the keystore is unlocked and the SIWE message signed there."""
    page.goto(f"{base}{path}")
    page.fill("#account", name)
    page.fill("#passphrase", passphrase)
    page.click("#login-button")
    page.wait_for_selector("body.logged-in", timeout=30_000)


TEXT_FIELDS = ("buyer", "seller", "buyerMeter", "sellerMeter", "offer")  # addresses, hashes


def bid_message(terms: dict, **changes) -> dict:
    """The message of /bids/terms (or /listings/terms) with its numbers as ints, and any fields
    changed."""
    message = {k: v if k in TEXT_FIELDS else int(v) for k, v in terms["message"].items()}
    return {**message, **changes}


def sign_bid_as(key, terms: dict, **changes) -> tuple[dict, str]:
    """(bid, 0x-signature): the bid of these terms (fields changed first) signed by key."""
    from contracts.bindings import sign_bid

    domain = terms["domain"]
    bid = bid_message(terms, **changes)
    signature = sign_bid(key, int(domain["chainId"]), domain["verifyingContract"], bid)
    return {k: str(v) if isinstance(v, int) else v for k, v in bid.items()}, "0x" + signature.hex()


def sign_offer_as(key, terms: dict, **changes) -> tuple[dict, str]:
    """(offer, 0x-signature): the offer of /listings/terms (fields changed first) signed by key."""
    from contracts.bindings import sign_offer

    domain = terms["domain"]
    offer = bid_message(terms, **changes)
    signature = sign_offer(key, int(domain["chainId"]), domain["verifyingContract"], offer)
    return ({k: str(v) if isinstance(v, int) else v for k, v in offer.items()},
            "0x" + signature.hex())


def offer_body(client, key, wh: int, price: int, duration_s: int, **changes) -> dict:
    """The body of POST /api/listings for a Flask test client logged in as key's owner: the
    offer of /api/listings/terms signed by key (fields changed first), no approval yet."""
    asked = {"energy_wh": wh, "start_price_wei": str(price), "duration_s": duration_s}
    terms = client.post("/api/listings/terms", json=asked).get_json()
    offer, signature = sign_offer_as(key, terms, **changes)
    return {"offer": offer, "signature": signature, "energy_wh": wh,
            "start_price_wei": str(price)}


def signed_raw(client, action: str, **params) -> str:
    """A gridbid_client.Client's signed transaction (0x-hex) for an action, not yet sent."""
    prepared = client.prepare(action, **params)
    return client.sign(action, params, prepared["tx"])


DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                 ("verifyingContract", "address"))


def sign_page_terms(key, terms: dict, **changes) -> tuple[dict, str]:
    """(message, 0x-signature): typed data as a page gets it (no EIP712Domain type, numbers as
    decimal strings) signed by key as the page's ethers would, fields changed first."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    primary = terms["primaryType"]
    fields = {f["name"]: f["type"] for f in terms["types"][primary]}
    message = {**terms["message"], **changes}
    typed_message = {k: int(v) if fields[k].startswith("uint") else v for k, v in message.items()}
    domain = terms["domain"]
    full = {"types": {"EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS
                                       if n in domain], **terms["types"]},
            "primaryType": primary, "domain": {**domain, "chainId": int(domain["chainId"])},
            "message": typed_message}
    signed = Account.sign_message(encode_typed_data(full_message=full), key.key)
    return {k: str(v) for k, v in message.items()}, "0x" + bytes(signed.signature).hex()


class Clearings:
    """The interval market's clearings as the hub announces them (after each is stored)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.seen: dict[int, dict] = {}
        runtime.hub.subscribe(self._heard)

    def _heard(self, topic: str, payload: dict) -> None:
        if topic == "interval":
            self.seen[payload["n"]] = payload

    def pass_boundary(self, clock) -> dict:
        """Move the market clock just past the next interval boundary; the clearing of the
        interval starting there, once the loop has announced it."""
        settings = self.runtime.market.settings
        length = settings.interval_s / settings.time_factor
        n = int(clock.now() // length) + 1
        clock.advance(n * length + 0.01 - clock.now())
        return wait_for(lambda: self.seen.get(n), what=f"interval {n} to be cleared")


class PortalWorker:
    """One `gridbid run` process on a free loopback port, its log in a file (the multi-worker
    tests start several on one store, queue and chain)."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], chain: str, data: Path,
                 port: int | None = None):
        import subprocess
        import sys

        from geth_private.anvil import free_port

        self.name = name
        self.data = data
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        root = Path(__file__).resolve().parents[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "run", "--port", str(self.port), "--chain", chain,
             "--data-dir", str(data)],
            cwd=root, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        """Whether it serves pages (fails the test if it exited)."""
        import requests

        if self.process.poll() is not None:
            pytest.fail(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/login", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def said(self, text: str) -> bool:
        """Whether its log holds text."""
        return text in self.log.read_text()

    def stop(self) -> None:
        """Terminate it (kill it if it does not stop)."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
