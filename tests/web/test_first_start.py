"""Portal workers starting at once on a fresh data directory share what the first run makes:
one session secret, one admin account (F8's unlocked read-modify-writes, at start-up)."""

from __future__ import annotations

import multiprocessing
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from geth_private import Keystore
from web import config as web_config
from web.runtime.accounts import AccountDirectory
from web.runtime.operator import admin_accounts

WORKERS = 3


def _bounded_wait(barrier) -> None:
    """Wait for every worker to get this far; with the lock they cannot, so it ends itself."""
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass


def _start_a_worker(data_dir: str, barrier, answers) -> None:
    """One worker's start-up in a child process: it reads (or makes) the session secret."""
    real = secrets.token_hex

    def token_hex_after_the_others(n=None):
        _bounded_wait(barrier)
        return real(n)

    secrets.token_hex = token_hex_after_the_others  # a child process: nothing to restore
    answers.put(web_config._secret(Path(data_dir), "secret_key"))


def test_workers_starting_at_once_share_one_session_secret(tmp_path):
    """F8: the secret file was touched, then written: a worker starting meanwhile read it empty
    or made its own, so sessions signed by one worker were refused by the other."""
    context = multiprocessing.get_context("fork")
    barrier, answers = context.Barrier(WORKERS, timeout=2), context.Queue()
    workers = [context.Process(target=_start_a_worker, args=(str(tmp_path), barrier, answers))
               for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    got = [answers.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert len(set(got)) == 1 and len(got[0]) == 64
    assert (tmp_path / "secret_key").read_text() == got[0]


def test_workers_starting_at_once_make_one_admin_account(tmp_path, monkeypatch):
    """F8: each worker found no admin yet, made one and wrote accounts.json: the admin
    printed by one worker was gone from the directory the next start read."""
    keystore = Keystore(tmp_path / "keystore", scrypt_n=2**10)
    accounts = AccountDirectory(tmp_path / "accounts.json", ["admin"])
    barrier = threading.Barrier(WORKERS, timeout=2)
    real_new = keystore.new

    def new_after_the_others(passphrase):
        _bounded_wait(barrier)
        return real_new(passphrase)

    monkeypatch.setattr(keystore, "new", new_after_the_others)
    with ThreadPoolExecutor(WORKERS) as pool:
        starts = list(pool.map(lambda _: admin_accounts(keystore, accounts, ["admin"])[0],
                               range(WORKERS)))
    assert len({s["address"] for s in starts}) == 1
    printed = [s["passphrase"] for s in starts if s["passphrase"]]
    assert len(printed) == 1  # one maker, one printed passphrase, and it opens the account
    assert accounts.address_of("admin") == starts[0]["address"]
    assert keystore.unlock(starts[0]["address"], printed[0]).address == starts[0]["address"]


def test_a_rating_above_the_token_ceiling_is_refused_with_what_to_change(tmp_path):
    """A demo board rated above MAX_RATED_POWER_W (its rating × emulator speed, as bench/portal
    set it) stops the start with a sentence naming the setting, not a raw InvalidEnrollment
    revert from the token."""
    import pytest

    from web import create_app, start_runtime

    app = create_app({"TESTING": True, "CHAIN_URI": "embedded://", "CHAIN_FALLBACK": False,
                      "SECRET_KEY": "test", "DEMO_ACCOUNTS": True, "SCRYPT_N": 2**10,
                      "DATA_DIR": str(tmp_path / "var"), "EMULATOR_SPEED": 600.0,
                      "PV_PEAK_W": 2000})
    with pytest.raises(ValueError, match="above MAX_RATED_POWER_W = 1000000 W"):
        start_runtime(app)
