"""emulator:// boards: the bridge process runs their emulator (one microgrid) on its own ptys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from firmware_bridge.board_uri import BoardURI, BoardURIError
from firmware_bridge.emulator import Microgrid

# Options a URI may leave out: what it leaves out takes the Microgrid's own default.
_CLOCK = ("speed", "start_hour")
_PRODUCER = ("pv_peak_w", "battery_wh", "soc")
_CONSUMER = ("load_w",)


def _given(options: Mapping[str, object], keys: Sequence[str]) -> dict[str, float]:
    return {key: float(options[key]) for key in keys if key in options}  # type: ignore[arg-type]


def _shared(uris: Sequence[BoardURI]) -> dict[str, float]:
    """The microgrid-wide options (speed, start_hour) given: every board that gives one agrees."""
    shared: dict[str, float] = {}
    for key in _CLOCK:
        given = {float(u.options[key]) for u in uris if key in u.options}  # type: ignore[arg-type]
        if len(given) > 1:
            raise BoardURIError(f"emulated boards of one bridge share one clock: {key} is "
                                f"{', '.join(f'{v:g}' for v in sorted(given))} across them")
        if given:
            shared[key] = given.pop()
    return shared


def start_emulated(
    uris: Sequence[BoardURI], link_dir: Path | None = None
) -> tuple[Microgrid, dict[str, str]]:
    """One microgrid joining every emulated board on one bus, started; its devices by board id."""
    ids = [u.target for u in uris]
    if len(set(ids)) != len(ids):
        raise BoardURIError(f"emulated board ids repeat: {sorted(ids)}")
    grid = Microgrid(**_shared(uris))
    for uri in uris:
        o = uri.options
        if o["kind"] == "producer":
            grid.add_producer(uri.target, sky=str(o["sky"]), **_given(o, _PRODUCER))
        else:
            grid.add_consumer(uri.target, **_given(o, _CONSUMER))
    try:
        return grid, grid.start(link_dir=link_dir)
    except BaseException:
        grid.stop()
        raise
