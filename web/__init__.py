"""The portal: Flask app factory, blueprints per feature, Socket.IO live updates."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.exceptions import HTTPException

from geth_private.errors import ChainError
from marketplace.errors import MarketError
from web.extensions import socketio
from web.runtime import Runtime
from web.throttle import LoginThrottle

DEFAULTS: dict[str, Any] = {
    "CHAIN_URI": "anvil://",  # falls back to embedded:// when no anvil binary is installed
    "CHAIN_FALLBACK": True,
    "DATA_DIR": "var",
    "STORE_URL": "",  # postgresql://… for several workers (docs/SCALE.md); else DATA_DIR's SQLite
    "MESSAGE_QUEUE": "",  # redis://… carries Socket.IO emits between workers
    "SCRYPT_N": 2**18,
    "DEMO": True,
    "DEMO_FUNDS_ETH": 100,
    "EMULATOR_SPEED": 60.0,  # one emulated minute per second, so a demo trade takes seconds
    "EMULATOR_START_HOUR": 11.0,
    "EMULATOR_SKY": "clear",  # or "clouds"
    "PV_PEAK_W": 400,
    "LOAD_W": 240,
    "REMOTE_BOARDS": "",  # demo boards served by `gridbid bridge` on another machine
    "STEP_WH": 5,
    "DEAL_TTL_S": 24 * 3600,  # a deal not done by then is stopped and closed
    "BID_MIN_INCREMENT_WEI": 1,  # a new highest bid beats the last by this much …
    "BID_MIN_INCREMENT_PCT": 1.0,  # … and by this percentage, whichever is more
    "SOFT_CLOSE_S": 10,  # a bid in the last 10 s pushes the deadline back 10 s …
    "SOFT_CLOSE_CAP_S": 60,  # … at most 60 s past the first deadline
    "MINT_BATCH_WH": 10,
    "TICK_S": 0.2,
    "EVENT_POLL_S": 0.5,
    "WALLET_PUSH_S": 1.0,
    "GRID_PUSH_S": 1.0,  # the live charts get a sample of every board this often
    "ADMINS": "admin",  # names or addresses of accounts that may open the admin page
    "LOGIN_MAX_FAILURES": 5,  # wrong passphrases for one account before it must wait …
    "LOGIN_LOCK_S": 60,  # … this long, doubling with each further lockout (max 1 h)
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the portal; its runtime (chain, boards, market) starts with start_runtime()."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("GRIDBID")
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(Path(app.config["DATA_DIR"]))
    if not app.config.get("BRIDGE_TOKEN"):
        # Remote bridges (`gridbid bridge --token …`) prove themselves with this.
        app.config["BRIDGE_TOKEN"] = _secret_key(Path(app.config["DATA_DIR"]), "bridge_token")

    from web import admin, auth, grid, live, market, wallet
    from web.session import check_csrf, csrf_token

    app.register_blueprint(auth.bp)
    app.register_blueprint(wallet.bp)
    app.register_blueprint(market.bp)
    app.register_blueprint(grid.bp)
    app.register_blueprint(admin.bp)
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    # Same-origin only (the default): another site cannot open a socket with our cookie.
    # With a message queue, an emit from any worker reaches the browsers of every worker.
    socketio.server_options.pop("client_manager", None)  # not kept from an earlier app
    socketio.init_app(
        app, async_mode="threading", message_queue=app.config["MESSAGE_QUEUE"] or None
    )
    live.register(socketio, app)
    runtime = app.extensions["gridbid"] = Runtime(app.config)
    # Failed logins, per account and per client address, on the portal's clock.
    failures, lock_s = app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_LOCK_S"]
    app.extensions["gridbid.throttles"] = (
        LoginThrottle(failures, lock_s=lock_s, clock=runtime.clock.now),
        LoginThrottle(failures * 4, lock_s=lock_s, clock=runtime.clock.now),
    )

    @app.errorhandler(MarketError)
    def market_error(err: MarketError):
        return jsonify(error=str(err), kind=type(err).__name__), err.status

    @app.errorhandler(ChainError)
    def chain_error(err: ChainError):
        app.logger.warning("chain error on %s: %s", request.path, err)
        return jsonify(error=f"the chain did not answer as expected: {err}",
                       kind=type(err).__name__), 502

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if not request.path.startswith("/api/"):
            return err
        return jsonify(error=err.description, kind=type(err).__name__), err.code

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        # A person gets a sentence, never a traceback; the log keeps the details.
        app.logger.exception("unexpected error on %s", request.path)
        if request.path.startswith("/api/"):
            return jsonify(error="internal error; the portal log has the details",
                           kind="InternalError"), 500
        return "Internal error; the portal log has the details.", 500

    @app.context_processor
    def navigation() -> dict[str, Any]:
        from web.session import current_account

        account = current_account()
        rt = app.extensions["gridbid"]
        return {"is_admin": bool(account and rt.started and rt.is_admin(account.address))}

    @app.get("/")
    def index():
        return redirect(url_for("wallet.page"))

    return app


def start_runtime(app: Flask) -> Runtime:
    """Start the app's runtime, its loops running as Socket.IO background tasks."""
    runtime: Runtime = app.extensions["gridbid"]
    runtime.start(spawn=socketio.start_background_task)
    pusher = app.extensions["gridbid.pusher"]
    runtime.hub.subscribe(pusher.on_hub)
    socketio.start_background_task(pusher.run)
    feed = app.extensions["gridbid.grid"]
    runtime.hub.subscribe(feed.on_hub)
    socketio.start_background_task(feed.run)
    return runtime


def _secret_key(data_dir: Path, name: str = "secret_key") -> str:
    """A secret kept in the data directory, so it survives a restart."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()
