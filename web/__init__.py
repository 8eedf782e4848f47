"""The portal: Flask app factory, blueprints per feature, Socket.IO live updates."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask

from web import compress, config, errors
from web.bridges import hear_queue, send_command
from web.config import DEFAULTS
from web.converters import AsciiIntegerConverter
from web.extensions import socketio
from web.pushers import GridFeed, SessionSockets, WalletPusher
from web.ratelimit import TokenBuckets
from web.runtime import Runtime
from web.session import MAX_SESSION_S, VerifiedCookieSessions
from web.signed_queue import signed_manager
from web.state import KEY, PortalState, portal

# web.simulate and bench read DEFAULTS
__all__ = ["DEFAULTS", "create_app", "start_runtime", "stop_runtime"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the portal; its runtime (chain, boards, market) starts with start_runtime()."""
    app = Flask(__name__, instance_relative_config=True)
    config.load(app.config, test_config)

    from web import admin, auth, book, chain, grid, live, market, pages, rpc, tx, wallet
    from web.access import trust_proxies
    from web.market import intervals
    from web.session import check_csrf, csrf_token

    trust_proxies(app)  # the client address every per-client rule keys on
    app.session_interface = VerifiedCookieSessions()
    app.url_map.converters["int"] = AsciiIntegerConverter  # before any route is added

    for feature in (pages, auth, wallet, market, intervals, grid, admin, tx, chain, rpc, book):
        app.register_blueprint(feature.bp)
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    errors.register(app)
    compress.init_app(app)  # gzip for static assets and the page shell
    # Same-origin only (the default): another site cannot open a socket with our cookie.
    # With a message queue, an emit from any worker reaches the browsers of every worker,
    # signed under a key derived from the SECRET_KEY they share (threat 76).
    for kept in ("client_manager", "message_queue"):  # not kept from an earlier app
        socketio.server_options.pop(kept, None)
    queue = app.config["MESSAGE_QUEUE"]
    managed = {"client_manager": signed_manager(queue, app.config["SECRET_KEY"])} if queue else {}
    socketio.init_app(app, async_mode="threading", **managed)
    live.register(socketio)
    runtime = Runtime(app.config, transport=send_command)
    app.extensions[KEY] = PortalState(
        runtime=runtime,
        # Sign-in attempts per client address (never per account).
        sign_ins=TokenBuckets(app.config["LOGIN_RATE_PER_S"], app.config["LOGIN_BURST"]),
        pusher=WalletPusher(runtime), feed=GridFeed(runtime), sockets=SessionSockets(),
    )
    return app


def start_runtime(app: Flask) -> Runtime:
    """Start the app's runtime, its loops running as Socket.IO background tasks."""
    state, config = portal(app), app.config
    runtime = state.runtime
    runtime.start(spawn=socketio.start_background_task)
    hear_queue()  # so a worker no client reached yet hears bridges' answers
    for feed in (state.pusher, state.feed):
        runtime.hub.subscribe(feed.on_hub)
    # Woken by every hub event; the short rest makes a burst of events one push.
    runtime.loop("wallet pushes", state.pusher.push_changed, config["WALLET_PUSH_S"],
                 wake=state.pusher.wake, gap_s=0.05)
    runtime.loop("grid samples", state.feed.push_sample, config["GRID_PUSH_S"])
    # A session that idles out (or outlives MAX_SESSION_S) loses its sockets as well.
    runtime.loop("idle sessions", lambda: state.sockets.close_idle(
        time.time(), config["SESSION_IDLE_S"], MAX_SESSION_S), 1.0)
    return runtime


def stop_runtime(app: Flask) -> None:
    """Stop the app's runtime (if it started) and Socket.IO's own background tasks."""
    runtime = portal(app).runtime
    if runtime.started:
        runtime.stop()
    server = getattr(socketio, "server", None)
    if server is not None:
        server.shutdown()
