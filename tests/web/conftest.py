"""Fixtures of the browser tests: Debian's headless Chromium driven by playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GRIDBID_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    """A headless Chromium (never playwright's own download: Debian's package)."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def chain(tmp_path):
    """One anvil the portal processes of a test share."""
    from geth_private import backend_from_uri

    node = backend_from_uri("anvil://", str(tmp_path / "chain"))
    node.start()
    yield node
    node.stop()
