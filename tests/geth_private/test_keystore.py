"""Keystore files: geth's format, unlock, wrong passphrase, damaged files."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from geth_private import Keystore, KeystoreError, WrongPassphrase
from geth_private import keystore as keystore_module
from geth_private.keystore import MachineKeys


@pytest.fixture
def keystore(tmp_path):
    return Keystore(tmp_path / "keystore", scrypt_n=2**10)


def test_new_account_is_a_geth_keystore_file(keystore):
    address = keystore.new("correct horse")
    path = keystore.path_of(address)
    assert path.name.startswith("UTC--") and path.name.endswith(address[2:].lower())
    data = json.loads(path.read_text())
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert keystore.addresses() == [address]


def test_unlock_with_right_and_wrong_passphrase(keystore):
    address = keystore.new("correct horse")
    assert keystore.unlock(address, "correct horse").address == address
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        keystore.unlock(address, "battery staple")


def test_unknown_address_and_damaged_file_give_clear_errors(keystore):
    with pytest.raises(KeystoreError, match="not an Ethereum address"):
        keystore.unlock("0x1234", "x")
    with pytest.raises(KeystoreError, match="no keystore file"):
        keystore.unlock("0x" + "ab" * 20, "x")
    address = keystore.new("pw")
    keystore.path_of(address).write_text("{not json")
    with pytest.raises(KeystoreError, match="unreadable keystore file"):
        keystore.unlock(address, "pw")
    assert keystore.addresses() == []  # the damaged file is not offered for login


def test_empty_passphrase_is_refused(keystore):
    with pytest.raises(KeystoreError, match="passphrase is required"):
        keystore.new("")


class _OneSecond(datetime):
    """The keystore's clock stuck in one second (and microsecond): every file gets one stamp."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_two_keystores_written_at_once_in_the_same_second_keep_both_keys(keystore, monkeypatch):
    """F8: two keystores written in the same second shared one temp file and one key was lost.

    Both writers are held after opening their temp file until the other has opened its own,
    which is the interleaving that lost a key: the old temp name was the stamp cut at its dot.
    """
    monkeypatch.setattr(keystore_module, "datetime", _OneSecond)
    both_open = threading.Barrier(2, timeout=20)
    real_fdopen = os.fdopen

    def fdopen_then_wait(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        if threading.current_thread() is not threading.main_thread():
            both_open.wait()
        return handle

    monkeypatch.setattr(os, "fdopen", fdopen_then_wait)
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(keystore.new, ["first passphrase", "second passphrase"]))
    monkeypatch.undo()
    assert sorted(keystore.addresses()) == sorted(made) and len(set(made)) == 2
    for address, passphrase in zip(made, ["first passphrase", "second passphrase"], strict=True):
        assert keystore.unlock(address, passphrase).address == address
    assert not [p.name for p in keystore.directory.iterdir() if p.name.endswith(".tmp")]


def test_meter_keys_made_at_once_by_many_threads_all_stay_in_the_index(tmp_path, monkeypatch):
    """F8: MachineKeys' index was read, extended and written back without a lock, so keys
    made at once dropped each other from it.

    Each new key waits (bounded) for the others to have read the index too: without the lock
    they all read it empty; with it they take turns, and the wait ends by itself.
    """
    keys = MachineKeys(tmp_path / "meters", scrypt_n=2**10)
    first = keys.get("board-0").address  # made alone: the secret file exists from here on
    names = [f"board-{i}" for i in range(1, 5)]
    everyone_read = threading.Barrier(len(names), timeout=2)
    real_new = keys.keystore.new

    def new_after_the_others_read(secret):
        try:
            everyone_read.wait()
        except threading.BrokenBarrierError:
            pass  # the others wait for the lock: they cannot have read the index yet
        return real_new(secret)

    monkeypatch.setattr(keys.keystore, "new", new_after_the_others_read)
    with ThreadPoolExecutor(len(names)) as pool:
        made = dict(zip(names, pool.map(lambda n: keys.get(n).address, names), strict=True))
    made["board-0"] = first
    index = json.loads(keys.index.read_text())
    assert index == made and len(set(made.values())) == len(made)
    again = MachineKeys(tmp_path / "meters", scrypt_n=2**10)
    assert {name: again.get(name).address for name in made} == made  # the same keys again


def test_the_first_meter_keys_made_at_once_share_one_secret(tmp_path):
    """F8: two first uses of MachineKeys at once both made the secret file; one crashed."""
    keys = MachineKeys(tmp_path / "meters", scrypt_n=2**10)
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda n: keys.get(f"board-{n}").address, range(4)))
    assert len(set(made)) == 4 and json.loads(keys.index.read_text()).keys() == {
        f"board-{n}" for n in range(4)}
