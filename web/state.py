"""The portal's application state: one typed object in app.extensions, read through portal()."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from web.pushers import GridFeed, SessionSockets, WalletPusher
from web.ratelimit import TokenBuckets
from web.runtime import Runtime

KEY = "gridbid"


@dataclass(frozen=True)
class PortalState:
    """What one portal app holds: its runtime, sign-in limits and the live channels' parts."""

    runtime: Runtime
    sign_ins: TokenBuckets  # sign-in attempts per client address
    pusher: WalletPusher
    feed: GridFeed
    sockets: SessionSockets


def portal(app: Flask | None = None) -> PortalState:
    """The state of an app (the current one when not given), as create_app made it."""
    return (app or current_app).extensions[KEY]
