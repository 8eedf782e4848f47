"""Keystore files: geth's format, unlock, wrong passphrase, damaged files."""

from __future__ import annotations

import json

import pytest

from geth_private import Keystore, KeystoreError, WrongPassphrase


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
