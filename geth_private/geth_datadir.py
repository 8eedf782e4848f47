"""What a geth datadir holds and how it is made: the genesis checked against the binary, `geth
init` run by that same binary, the sealer and operator keys, and the first answer of its RPC."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from geth.exceptions import PyGethException
from geth.utils.validation import validate_genesis_data
from web3 import Web3
from web3.exceptions import Web3Exception

from geth_private.errors import ChainError, ChainUnavailable
from geth_private.genesis import clique_signers, read_genesis, write_genesis
from geth_private.geth_config import DEV_GENESIS_FIXED, uses_clique
from geth_private.keystore import Keystore

INIT_TIMEOUT = 120


def refuse_broken_version(version: tuple[int, int, int]) -> None:
    """Refuse a geth that cannot run our chain at all, saying which one to use instead."""
    if (1, 14, 0) <= version < DEV_GENESIS_FIXED:
        raise ChainUnavailable(
            f"geth {'.'.join(map(str, version))} refuses a chain merged at genesis on every "
            "--dev start (difficulty 0 against terminal total difficulty 0, fixed in 1.14.1): "
            "use geth ≥ 1.14.1, or 1.13.15 for a clique network of several machines"
        )


def check_genesis(genesis: dict[str, Any], version: tuple[int, int, int], source: Path) -> None:
    """Refuse a genesis this geth cannot run, before `geth init` writes anything."""
    config = genesis.get("config") or {}
    named = ".".join(map(str, version))
    if uses_clique(version):
        if "clique" not in config:
            raise ChainError(
                f"{source} is not a clique genesis (a --dev one, for geth ≥ 1.14?): geth {named} "
                "seals only clique networks; make the network's genesis with "
                "`gridbid chain init --signers ADDR,…` and give that file to every machine"
            )
        if not isinstance(config["clique"].get("period"), int):
            raise ChainError(f"{source}: config.clique.period must be a whole number of seconds")
        if not clique_signers(genesis):
            raise ChainError(f"{source} names no clique signer in its extraData: nobody could seal")
    elif "clique" in config or config.get("terminalTotalDifficulty") != 0:
        raise ChainError(
            f"{source} is a pre-merge (clique) genesis: geth {named} runs only merged chains; "
            "run this network with geth 1.13.15"
        )
    if "chainId" not in config:
        raise ChainError(f"{source} has no config.chainId")


def initialised_genesis(datadir: Path, genesis_path: Path, clique: bool) -> dict[str, Any]:
    """The genesis an initialised datadir was made from, refused if made for the other mode."""
    try:
        genesis = read_genesis(genesis_path)
    except ValueError as err:
        raise ChainError(
            f"{datadir} holds a chain but no readable genesis.json: restore it "
            f"or give a new datadir= ({err})"
        ) from err
    if ("clique" in genesis["config"]) != clique:
        made = "clique (geth 1.13)" if "clique" in genesis["config"] else "--dev (geth ≥ 1.14)"
        raise ChainError(
            f"{datadir} was made for {made}; run it with that geth or give a new datadir="
        )
    return genesis


def first_chain_id(w3: Web3, alive: Callable[[], bool], timeout: float, log_path: Path) -> int:
    """The chain id a starting geth answers with, once its RPC serves (it may refuse at first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(w3.eth.chain_id)
        except (OSError, Web3Exception, ValueError):
            if not alive() or time.monotonic() > deadline:
                raise ChainUnavailable(
                    f"geth stopped answering while starting; see {log_path}"
                ) from None
            time.sleep(0.1)


def geth_init(binary: str, genesis: dict[str, Any], datadir: Path, genesis_path: Path) -> None:
    """Write the genesis into the datadir and run `<binary> --datadir D init` on it.

    py-geth's initialize_chain runs whatever GETH_BINARY or PATH names, which need not be the
    binary whose version chose the genesis shape, so the same binary runs here.
    """
    try:
        validate_genesis_data(genesis)  # type: ignore[arg-type]
    except PyGethException as err:
        raise ChainError(f"the genesis is not one geth accepts: {err}") from err
    write_genesis(genesis_path, genesis)
    command = [binary, "--datadir", str(datadir), "init", str(genesis_path)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INIT_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ChainError(f"`{' '.join(command)}` could not run: {err}") from err
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise ChainError(f"`geth init` failed (code {done.returncode}); genesis {genesis_path}:\n"
                         f"{tail}")


def secret(path: Path) -> str:
    """The passphrase in `path`, created (random, owner-only 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    passphrase = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(passphrase + "\n")
    return passphrase


def own_key(keystore_dir: Path, pass_path: Path, scrypt_n: int, create: bool) -> str | None:
    """The node's sealer address in geth's keystore; made (with its passphrase) if asked.

    A machine makes it before any genesis exists (`gridbid chain keygen`), so the network's
    genesis can name it as a signer.
    """
    keystore_dir.parent.mkdir(parents=True, exist_ok=True)
    addresses = Keystore(keystore_dir).addresses() if keystore_dir.is_dir() else []
    if addresses:
        return addresses[0]
    if not create:
        return None
    return Keystore(keystore_dir, scrypt_n).new(secret(pass_path))


def unlock_operator(operator_dir: Path, pass_path: Path, scrypt_n: int) -> LocalAccount | None:
    """The operator (faucet) key the genesis funded, decrypted here; None where there is none."""
    store = Keystore(operator_dir, scrypt_n)
    addresses = store.addresses() if operator_dir.is_dir() else []
    if not addresses or not pass_path.exists():
        return None
    return store.unlock(addresses[0], pass_path.read_text().strip())
