"""`gridbid accounts` and `gridbid chain` run from a terminal, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from eth_account import Account

from geth_private.anvil import find_anvil
from tests.common import wait_for

GRIDBID = [sys.executable, "-m", "web.cli"]


def run(*args, **kwargs):
    return subprocess.run([*GRIDBID, *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_accounts_new_list_import(tmp_path):
    secret = tmp_path / "pass"
    secret.write_text("s3cret\n")
    data = ["--data-dir", str(tmp_path), "--password-file", str(secret), "--scrypt-n", "1024"]
    made = run("accounts", "new", *data)
    assert made.returncode == 0, made.stderr
    address = made.stdout.strip()
    assert "s3cret" not in made.stdout + made.stderr  # never echoed or logged

    outside = tmp_path / "elsewhere.json"
    account = Account.create()
    outside.write_text(json.dumps(Account.encrypt(account.key, "s3cret", iterations=1024)))
    imported = run("accounts", "import", str(outside), *data)
    assert imported.returncode == 0 and imported.stdout.strip() == account.address

    listed = run("accounts", "list", "--data-dir", str(tmp_path)).stdout.split()
    assert sorted(listed) == sorted([address, account.address])

    secret.write_text("wrong\n")
    refused = run("accounts", "import", str(outside), *data)
    assert refused.returncode == 1 and "wrong passphrase" in refused.stderr


@pytest.mark.skipif(find_anvil() is None, reason="anvil not installed: `npm ci` installs it")
def test_chain_start_status_stop(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    node = subprocess.Popen([*GRIDBID, "chain", "start", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert "running, RPC at http://127.0.0.1:" in node.stdout.readline()
        status = run("chain", "status", "--data-dir", str(tmp_path))
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["client"].startswith("anvil") and info["mining"] is True
        peers = run("chain", "peers", "--data-dir", str(tmp_path))
        assert peers.returncode == 1 and "does not report peers" in peers.stderr
        stopped = run("chain", "stop", "--data-dir", str(tmp_path))
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        wait_for(lambda: node.poll() is not None, what="the node to exit")
    finally:
        if node.poll() is None:
            node.kill()
    time.sleep(0.2)
    assert (tmp_path / "anvil-state.json").exists()
    gone = run("chain", "status", "--data-dir", str(tmp_path))
    assert gone.returncode == 1 and "gridbid chain start" in gone.stderr
