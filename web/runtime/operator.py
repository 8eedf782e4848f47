"""The portal operator's own accounts: its chain key (made on first run, funded) and the admin."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from geth_private import Keystore
from geth_private.errors import KeystoreError, WrongPassphrase
from geth_private.files import locked, write_atomic
from marketplace.ledger import Ledger
from web.runtime.accounts import AccountDirectory

log = logging.getLogger(__name__)

ETHER = 10**18
OPERATOR_BOOK = "operator.json"  # which keystore file is the operator's
PASSPHRASE_FILE = "operator_passphrase"  # its passphrase, unless the environment gives one
PASSPHRASE_ENV = "GRIDBID_OPERATOR_PASSPHRASE"
# The operator's login for the admin page: an account of its own, not a market participant.
ADMIN = {"name": "admin", "role": "admin"}


class OperatorKeyError(KeystoreError):
    """The operator's key cannot be opened: what to do is in the sentence."""


def operator_account(keystore: Keystore, data_dir: Path, passphrase: str | None) -> LocalAccount:
    """The operator's key: generated into the keystore on first run, unlocked on later ones."""
    book = data_dir / OPERATOR_BOOK
    with locked(book):  # workers starting at once on one data directory make one operator
        if not book.exists():
            secret, source = _passphrase(data_dir, passphrase, create=True)
            account: LocalAccount = Account.create()
            keystore.store(account, secret)
            write_atomic(book, json.dumps({"address": account.address}, indent=1))
            log.info("operator key %s generated (passphrase from %s)", account.address, source)
            return account
    address = json.loads(book.read_text())["address"]
    secret, source = _passphrase(data_dir, passphrase, create=False, address=address)
    started = time.perf_counter()
    try:
        account = keystore.unlock(address, secret)
    except WrongPassphrase as err:
        raise OperatorKeyError(
            f"the operator key {address} does not open with the passphrase from {source}: set "
            f"{PASSPHRASE_ENV} (or {data_dir / PASSPHRASE_FILE}) to the passphrase it was made "
            f"with; to start over with a new operator instead, move {book} away (the "
            "contracts are then deployed anew)"
        ) from err
    except KeystoreError as err:
        raise OperatorKeyError(
            f"the operator key {address} named in {book} cannot be read ({err}): restore its "
            f"keystore file to {keystore.directory}, or move {book} away to make a new operator"
        ) from err
    # Decrypting at geth's scrypt cost takes most of a second: once per start, and said so.
    log.info("operator key %s unlocked in %.1f s (scrypt n=%d)", address,
             time.perf_counter() - started, keystore.scrypt_n)
    return account


def _passphrase(
    data_dir: Path, given: str | None, *, create: bool, address: str = ""
) -> tuple[str, str]:
    """The operator's passphrase and where it came from: config/environment, else the file."""
    if given:
        return str(given), PASSPHRASE_ENV
    path = data_dir / PASSPHRASE_FILE
    if path.exists():
        return path.read_text().strip(), str(path)
    if not create:
        raise OperatorKeyError(
            f"the operator key {address} is locked with a passphrase that is neither in "
            f"{PASSPHRASE_ENV} nor in {path}: set one of them to the passphrase it was made with"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    # Made readable by the owner only before anything is written into it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret, str(path)


def fund_operator(ledger: Ledger, funds_eth: int) -> None:
    """Top the operator up from the faucet when it runs below half of funds_eth (gas money)."""
    operator = ledger.operator.address
    if ledger.eth_balance(operator) < funds_eth * ETHER // 2:
        ledger.fund(operator, funds_eth * ETHER)


def admin_accounts(
    keystore: Keystore, accounts: AccountDirectory, admins: Sequence[str]
) -> list[dict[str, Any]]:
    """The admin login (when ADMINS names it): made on first run with a generated passphrase.

    The passphrase is handed back on that run only (for `gridbid run` to print once); later
    runs get None, since only its keystore keeps it.
    """
    if ADMIN["name"] not in admins:
        return []
    made: list[str] = []

    def new_admin() -> str:
        made.append(secrets.token_urlsafe(12))
        return keystore.new(made[0])

    # ensure: workers starting at once make one admin account, and only its maker prints it.
    address = accounts.ensure(ADMIN["name"], new_admin)
    return [{**ADMIN, "address": address, "passphrase": made[0] if made else None}]
