"""Helpers of the market tests that run on a started portal runtime."""

from __future__ import annotations

from gridbid_client.local import LocalParty
from tests.common import wait_for

ETH = 10**18


def unlocked(runtime):
    """The demo accounts as parties signing with their own keys (the tests' cheap keystores)."""
    return {a["name"]: LocalParty(runtime.market, runtime.wallets,
                                  runtime.keystore.unlock(a["address"], a["passphrase"]))
            for a in runtime.demo_accounts}


def ready(runtime, wh=60):
    """The demo accounts once alice holds `wh` energy tokens and bob and carol prepaid 0.1 ETH."""
    people = unlocked(runtime)
    wait_for(lambda: runtime.ledger.token_balance(people["alice"].address) >= wh, what="tokens")
    for name in ("bob", "carol"):
        runtime.ledger.wait(people[name].deposit(ETH // 10))
    return people
