"""Keystores on the client: what register() encrypts, unlock() opens, with the passphrase only."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from gridbid_client.keys import KeyfileError, encrypt, unlock

ACCOUNT = Account.from_key("0x" + "c3" * 32)


def test_unlock_opens_a_keystore_from_a_path_its_text_or_its_dict(tmp_path):
    keystore = encrypt(ACCOUNT, "correct horse", scrypt_n=2**4)
    assert keystore["crypto"]["kdf"] == "scrypt"
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keystore))
    for source in (path, str(path), json.dumps(keystore), keystore):
        assert unlock(source, "correct horse").address == ACCOUNT.address


def test_a_wrong_passphrase_or_a_bad_file_is_a_keyfile_error(tmp_path):
    keystore = encrypt(ACCOUNT, "correct horse", scrypt_n=2**4)
    with pytest.raises(KeyfileError, match="wrong passphrase"):
        unlock(keystore, "battery staple")
    with pytest.raises(KeyfileError, match="cannot read"):
        unlock(tmp_path / "missing.json", "x")
    with pytest.raises(KeyfileError, match="not a geth keystore"):
        unlock('{"address": "00"}', "x")
    with pytest.raises(KeyfileError, match="passphrase"):
        encrypt(ACCOUNT, "")
