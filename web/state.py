"""The portal's application state: one typed object in app.extensions, read through portal()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from web.throttle import LoginThrottles

if TYPE_CHECKING:
    # For the annotations only: web.live and web.bridges (below Runtime) read the state through
    # portal(), so importing these at run time would circle back to them.
    from web.live import GridFeed, SessionSockets, WalletPusher
    from web.runtime import Runtime

KEY = "gridbid"


@dataclass(frozen=True)
class PortalState:
    """What one portal app holds: its runtime, login throttles and the live channels' parts."""

    runtime: Runtime
    throttles: LoginThrottles
    pusher: WalletPusher
    feed: GridFeed
    sockets: SessionSockets


def portal(app: Flask | None = None) -> PortalState:
    """The state of an app (the current one when not given), as create_app made it."""
    return (app or current_app).extensions[KEY]
