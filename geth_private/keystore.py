"""Accounts kept as geth-format (Web3 Secret Storage v3) keystore files in one directory."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from geth_private.errors import KeystoreError, WrongPassphrase
from geth_private.files import locked, write_atomic

# geth's own default (n=2**18) costs ~0.7 s per unlock; tests pass a lower cost.
DEFAULT_SCRYPT_N = 2**18


class Keystore:
    """A directory of `UTC--<time>--<address>` files, as geth writes them."""

    def __init__(self, directory: str | os.PathLike[str], scrypt_n: int = DEFAULT_SCRYPT_N):
        self.directory = Path(directory)
        self.scrypt_n = scrypt_n

    def new(self, passphrase: str) -> str:
        """Create a fresh account encrypted with the passphrase; return its address."""
        return self.store(Account.create(), passphrase)

    def store(self, account: LocalAccount, passphrase: str) -> str:
        """Write an account's key encrypted with the passphrase; return its address."""
        if not passphrase:
            raise KeystoreError("a passphrase is required to encrypt a key")
        self.directory.mkdir(parents=True, exist_ok=True)
        keyfile = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=self.scrypt_n)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%fZ")
        path = self.directory / f"UTC--{stamp}--{account.address[2:].lower()}"
        # Written whole then renamed, and readable by the owner only, like geth's files. The
        # temp file's name is its own: with_suffix(".tmp") cut the name at the stamp's dot, so
        # two keys written in one second shared a temp file and one of them was lost.
        write_atomic(path, json.dumps(keyfile), 0o600)
        return account.address

    def read(self, address: str) -> dict:
        """An account's encrypted keystore as geth wrote it (KeystoreError if none)."""
        return self._read(self.path_of(address))

    def addresses(self) -> list[str]:
        """Checksummed addresses of every keystore file, oldest first."""
        found = []
        for path in sorted(self.directory.glob("UTC--*")):
            if path.suffix == ".tmp":
                continue  # left by an older portal's interrupted write
            try:
                found.append(to_checksum_address("0x" + self._read(path)["address"]))
            except (KeystoreError, KeyError, ValueError):
                continue  # a damaged file is reported when someone tries to unlock it
        return found

    def path_of(self, address: str) -> Path:
        """The keystore file holding an address."""
        if not is_address(address):
            raise KeystoreError(f"{address!r} is not an Ethereum address")
        suffix = address.lower().removeprefix("0x")
        for path in self.directory.glob(f"UTC--*--{suffix}"):
            return path
        raise KeystoreError(f"no keystore file for {to_checksum_address(address)}")

    def unlock(self, address: str, passphrase: str) -> LocalAccount:
        """Decrypt an account; WrongPassphrase when the passphrase does not fit."""
        keyfile = self._read(self.path_of(address))
        try:
            key = Account.decrypt(keyfile, passphrase)
        except ValueError as err:
            if "MAC mismatch" in str(err):
                raise WrongPassphrase("wrong passphrase for this account") from err
            raise KeystoreError(f"cannot decrypt keystore file: {err}") from err
        return Account.from_key(key)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise KeystoreError(f"unreadable keystore file {path.name}: {err}") from err
        if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
            raise KeystoreError(f"{path.name} is not a keystore file")
        return data


class MachineKeys:
    """Keys a machine uses unattended (its meters): a keystore opened by a secret file beside it.

    A meter signs without a person at hand, as a hardware meter would with its key in flash;
    the secret file (mode 0600) is what protects the keys at rest.
    """

    def __init__(self, directory: str | os.PathLike[str], scrypt_n: int = DEFAULT_SCRYPT_N):
        self.keystore = Keystore(directory, scrypt_n)
        self.index = Path(directory) / "index.json"
        self.secret_file = Path(directory) / ".secret"

    def get(self, name: str) -> LocalAccount:
        """The key called name (e.g. a board id), created on first use."""
        # Portal workers share the directory: the index is read, extended and written back
        # by one of them at a time, or a key made by one is dropped by the other's write.
        with locked(self.index):
            secret = self._secret()
            names = json.loads(self.index.read_text()) if self.index.exists() else {}
            if name not in names:
                names[name] = self.keystore.new(secret)
                write_atomic(self.index, json.dumps(names, indent=1, sort_keys=True))
        return self.keystore.unlock(names[name], secret)

    def _secret(self) -> str:
        """The keystore's secret, made on first use (called under the index lock)."""
        if not self.secret_file.exists():
            write_atomic(self.secret_file, secrets.token_hex(32), 0o600)
        return self.secret_file.read_text()
