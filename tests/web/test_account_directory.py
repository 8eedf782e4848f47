"""The account directory (accounts.json) keeps every name made at once, by threads and by
portal worker processes sharing one data directory."""

from __future__ import annotations

import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from marketplace.errors import InvalidInput
from web.runtime.accounts import AccountDirectory

CREATORS = 4


def _wait_for_the_others(barrier) -> None:
    """Hold a new account until every creator has read the file too (bounded: with the lock
    the others wait for it and cannot have read yet, so the wait ends by itself)."""
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass


def _create_in_a_worker(path: str, name: str, barrier) -> None:
    """One portal worker process making one account (run in a child process)."""
    directory = AccountDirectory(Path(path))

    def made() -> str:
        _wait_for_the_others(barrier)
        return "0x" + name.encode().hex().ljust(40, "0")

    directory.create(name, made)


def test_accounts_made_at_once_by_threads_all_stay(tmp_path):
    """F8: AccountDirectory read accounts.json, added a name and wrote it back unlocked: of
    accounts made at once, all but one were dropped from the directory."""
    directory = AccountDirectory(tmp_path / "accounts.json")
    barrier = threading.Barrier(CREATORS, timeout=2)
    names = [f"user{i}" for i in range(CREATORS)]

    def create(name: str) -> str:
        def made() -> str:
            _wait_for_the_others(barrier)
            return "0x" + name.encode().hex().ljust(40, "0")

        return directory.create(name, made)

    with ThreadPoolExecutor(CREATORS) as pool:
        made = dict(zip(names, pool.map(create, names), strict=True))
    assert directory.names() == made
    assert json.loads((tmp_path / "accounts.json").read_text()) == made


def test_accounts_made_at_once_by_worker_processes_all_stay(tmp_path):
    """F8: portal workers share a data directory, so the directory's lock holds across
    processes (an OS file lock), not only across one process's threads."""
    path = tmp_path / "accounts.json"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CREATORS, timeout=2)
    names = [f"worker{i}" for i in range(CREATORS)]
    workers = [context.Process(target=_create_in_a_worker, args=(str(path), name, barrier))
               for name in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * CREATORS
    assert sorted(AccountDirectory(path).names()) == names


def test_a_taken_name_is_still_refused_and_changes_nothing(tmp_path):
    """The lock keeps the old rule: a name is made once."""
    directory = AccountDirectory(tmp_path / "accounts.json")
    directory.record("alice", "0x" + "a" * 40)
    with pytest.raises(InvalidInput, match="taken"):
        directory.record("alice", "0x" + "b" * 40)
    assert directory.names() == {"alice": "0x" + "a" * 40}
