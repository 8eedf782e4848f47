"""emulator:// boards: the bridge process runs their emulator (one microgrid) on its own ptys."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from firmware_bridge.board_uri import BoardURI, BoardURIError
from firmware_bridge.emulator import Microgrid

DEFAULT_SPEED = 60.0
DEFAULT_START_HOUR = 11.0


def _shared(uris: Sequence[BoardURI], key: str, default: float) -> float:
    """A microgrid-wide option (speed, start_hour): every board that gives it agrees."""
    given = {float(u.options[key]) for u in uris if key in u.options}  # type: ignore[arg-type]
    if len(given) > 1:
        raise BoardURIError(f"emulated boards of one bridge share one clock: {key} is "
                            f"{', '.join(f'{v:g}' for v in sorted(given))} across them")
    return given.pop() if given else default


def start_emulated(
    uris: Sequence[BoardURI], link_dir: Path | None = None
) -> tuple[Microgrid, dict[str, str]]:
    """One microgrid joining every emulated board on one bus, started; its devices by board id."""
    ids = [u.target for u in uris]
    if len(set(ids)) != len(ids):
        raise BoardURIError(f"emulated board ids repeat: {sorted(ids)}")
    grid = Microgrid(speed=_shared(uris, "speed", DEFAULT_SPEED),
                     start_hour=_shared(uris, "start_hour", DEFAULT_START_HOUR))
    for uri in uris:
        o = uri.options
        if o["kind"] == "producer":
            grid.add_producer(uri.target, pv_peak_w=float(o.get("pv_peak_w", 400.0)),
                              battery_wh=float(o.get("battery_wh", 1200.0)),
                              soc=float(o.get("soc", 0.5)), sky=str(o["sky"]))
        else:
            grid.add_consumer(uri.target, load_w=float(o.get("load_w", 240.0)))
    try:
        return grid, grid.start(link_dir=link_dir)
    except BaseException:
        grid.stop()
        raise
