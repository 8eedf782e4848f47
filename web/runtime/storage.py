"""Where the market's store lives, and forgetting it when the chain it described is gone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

MARKET_DB = "market.sqlite"


def store_location(config: Mapping[str, Any], data_dir: Path) -> Path | str:
    """STORE_URL (e.g. postgresql://…, shared by workers), STORE_PATH, or the data directory's."""
    if config.get("STORE_URL"):
        return config["STORE_URL"]
    if config.get("STORE_PATH"):
        return Path(config["STORE_PATH"])
    return data_dir / MARKET_DB


def is_default(config: Mapping[str, Any]) -> bool:
    """Whether the store is the data directory's own (neither STORE_URL nor STORE_PATH given)."""
    return not (config.get("STORE_URL") or config.get("STORE_PATH"))


def forget_market(data_dir: Path) -> None:
    """Delete the data directory's market database (with its journal files)."""
    for stale in data_dir.glob(MARKET_DB + "*"):
        stale.unlink()
