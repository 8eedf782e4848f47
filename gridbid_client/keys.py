"""Keys kept on the client: unlock an encrypted (geth/Web3 Secret Storage) keystore file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount


class KeyfileError(ValueError):
    """A keystore cannot be read, or the passphrase does not open it."""


def _keystore(path_or_json: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(path_or_json, Mapping):
        return dict(path_or_json)
    text = str(path_or_json)
    if not text.lstrip().startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as err:
            raise KeyfileError(f"cannot read the keystore {path_or_json}: {err}") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise KeyfileError("the keystore is not JSON") from err
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise KeyfileError("the keystore has no 'crypto' section: not a geth keystore")
    return data


def unlock(path_or_json: str | Path | Mapping[str, Any], passphrase: str) -> LocalAccount:
    """The account a keystore (a path, its JSON text, or the parsed dict) holds."""
    keystore = _keystore(path_or_json)
    try:
        key = Account.decrypt(keystore, passphrase)
    except ValueError as err:
        # eth-keyfile says "MAC mismatch" for a wrong passphrase; say it as a person would.
        if "MAC mismatch" in str(err):
            raise KeyfileError("wrong passphrase for this keystore") from err
        raise KeyfileError(f"the keystore cannot be opened: {err}") from err
    return Account.from_key(key)


def encrypt(account: LocalAccount, passphrase: str, scrypt_n: int = 2**18) -> dict[str, Any]:
    """The account's key as a scrypt keystore (geth's format; geth's n = 2**18 by default)."""
    if not passphrase:
        raise KeyfileError("a keystore needs a passphrase")
    return Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=scrypt_n)
