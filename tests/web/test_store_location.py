"""Which market store a portal opens, and when it starts afresh with a chain that forgets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from geth_private import backend_from_uri
from web.runtime.wiring import _open_store


def _market_with_a_row(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE kept (x)")
        db.execute("INSERT INTO kept VALUES (1)")


def _kept(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        return bool(db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'kept'").fetchone())


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_a_store_path_the_operator_named_survives_a_chain_that_forgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    data_dir = Path("var") if relative else tmp_path / "var"
    path = data_dir / "market.sqlite"  # the same file the default would use
    _market_with_a_row(path)
    store = _open_store({"STORE_PATH": str(path)}, data_dir, backend_from_uri("embedded://"))
    store.close()
    assert _kept(path)


def test_the_default_store_starts_afresh_with_a_chain_that_forgets(tmp_path: Path) -> None:
    path = tmp_path / "market.sqlite"
    _market_with_a_row(path)
    store = _open_store({}, tmp_path, backend_from_uri("embedded://"))
    store.close()
    assert not _kept(path)
