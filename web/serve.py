"""`gridbid run`'s server: gunicorn's threaded worker, one per process, the runtime in it.

Flask-SocketIO's deployment notes for threading mode: gunicorn with one worker and threads
(`-w 1 --threads N`), WebSocket through simple-websocket; each WebSocket holds a thread for its
life, so N is sized for the clients. Several processes go behind nginx (sticky sessions with
`ip_hash`) sharing PostgreSQL and Redis (docs/DEPLOY.md). The app is made and the runtime
(chain child, ptys, loops) started in the worker after the fork, never in the arbiter
(`preload_app` stays off); `max_requests` stays 0, since a recycled worker would restart the
chain and the boards; the worker's exit stops the runtime.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.sock import TCP6Socket, TCPSocket
from gunicorn.workers.gthread import ThreadWorker

from web import config
from web.signed_queue import check_queue_url

log = logging.getLogger(__name__)

# What the server reads from the portal's config (GRIDBID_WORKER_THREADS, instance/config.py).
SERVER_DEFAULTS: dict[str, Any] = {
    # Threads of the one worker: each open WebSocket holds one (bench/portal.py's 200 clients
    # and some for pages and the API).
    "WORKER_THREADS": 250,
    # Seconds the worker may go without a heartbeat. Start-up (anvil, contracts, demo boards)
    # runs in the worker before its first one: on this 2-core machine shared with other jobs
    # it took up to ~25 s, so the bound is well above it. Serving, the threaded worker's main
    # loop beats every second whatever its threads do, so a long request never trips it.
    "WORKER_TIMEOUT_S": 120,
    # Seconds a stopping worker waits for requests in flight; the Socket.IO connections are
    # closed as the stop begins (PortalWorker), so what is left is short HTTP requests.
    "GRACEFUL_TIMEOUT_S": 10,
}

Banner = Callable[[Any], None]
PR_SET_PDEATHSIG = 1


def server_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """The portal's settings as create_app will read them (defaults, instance, GRIDBID_*)."""
    # A bare Flask of the web package finds the same instance/config.py; no blueprints, no
    # Socket.IO, no runtime: this runs in the arbiter, before any fork.
    bare = Flask("web", instance_relative_config=True)
    bare.config.from_mapping(SERVER_DEFAULTS)
    config.load(bare.config, overrides)
    return dict(bare.config)


KEEPALIVE_S = 75  # idle keep-alive connections kept open (nginx's upstream ones last 60 s)


def bind_address(host: str, port: int) -> str:
    """gunicorn's bind string; an IPv6 host goes in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def options(settings: dict[str, Any], host: str, port: int) -> dict[str, Any]:
    """The gunicorn settings of a portal process: one threaded worker, the hooks below."""
    threads = _whole(settings, "WORKER_THREADS", 1)
    return {
        "bind": [bind_address(host, port)],
        "workers": 1,  # sticky sessions need one worker a process; embedded:// lives in it
        "worker_class": PortalWorker,
        "threads": threads,
        "timeout": _whole(settings, "WORKER_TIMEOUT_S", 1),
        "graceful_timeout": _whole(settings, "GRACEFUL_TIMEOUT_S", 0),
        "preload_app": False,
        "max_requests": 0,
        # An idle connection is kept longer than nginx keeps its own to us (upstream
        # keepalive_timeout, 60 s) or a client reuses one: gunicorn's 2 s closed connections
        # nginx or a requests session then sent a POST on (a 502 through nginx; a test's
        # RemoteDisconnected). The threaded worker waits on idle ones in its poller, not in a
        # thread, so each costs a descriptor.
        "keepalive": KEEPALIVE_S,
        "control_socket_disable": True,  # gunicorn ≥ 25.1: one shared ~/.gunicorn/gunicorn.ctl
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "proc_name": f"gridbid:{port}",
    }


def _whole(settings: dict[str, Any], key: str, least: int) -> int:
    """A whole-number setting, at least `least`; a clear ValueError otherwise."""
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() \
            or int(value) < least:
        raise ValueError(f"{key} must be a whole number of at least {least}, not {value!r}")
    return int(value)


class _ListenWhenReady:
    """A gunicorn listener bound in the arbiter (a port in use fails at once) that listens
    only once the worker's runtime is up: until then a connection is refused, so nginx
    passes it to another process at once instead of holding it through the start-up."""

    conf: Any
    sock: Any

    @staticmethod
    def _is_listening(sock: Any) -> bool:
        # gunicorn calls listen() unless the socket already listens: this one waits.
        return True

    def listen(self) -> None:
        """Start accepting connections (the runtime is ready)."""
        self.sock.listen(self.conf.backlog)


class LateTCPSocket(_ListenWhenReady, TCPSocket):
    """An IPv4 listener that listens once the portal is ready."""


class LateTCP6Socket(_ListenWhenReady, TCP6Socket):
    """An IPv6 listener that listens once the portal is ready."""


def late_listeners(server: BaseApplication, log: Any) -> list[_ListenWhenReady]:
    """The bound, not yet listening sockets of the server's bind addresses."""
    listeners: list[_ListenWhenReady] = []
    for address in server.cfg.address:
        kind = LateTCP6Socket if util.is_ipv6(address[0]) else LateTCPSocket
        listeners.append(kind(address, server.cfg, log))
    return listeners


class PortalWorker(ThreadWorker):
    """gunicorn's threaded worker that closes the Socket.IO connections as it stops.

    A WebSocket (or a long poll) is a request that ends only when its client leaves: left
    open, the stop would wait out graceful_timeout and the arbiter would then SIGKILL the
    worker before its runtime stopped.
    """

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs in the main thread between two bytecodes: the disconnects
        # take engine.io's locks, so they go to a thread of their own.
        threading.Thread(target=close_sockets, name="close sockets", daemon=True).start()


def close_sockets() -> None:
    """Disconnect every Socket.IO client of this process (they reconnect to another one)."""
    from web.extensions import socketio

    server = getattr(socketio, "server", None)
    if server is not None:
        try:
            server.eio.disconnect()  # no sid: every client
        except Exception:  # a stop must go on whatever a socket does
            log.exception("closing the Socket.IO connections failed")


def post_fork(server: Arbiter, worker: ThreadWorker) -> None:
    """In the new worker: die with the arbiter, so a kill -9 of `gridbid run` is a crash of
    the whole portal (no orphan keeps the port, the store and the boards)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return  # not Linux: gunicorn's own "parent changed" check stops the orphan
    if os.getppid() != server.pid:  # the arbiter died before prctl took effect
        os._exit(1)


def post_worker_init(worker: ThreadWorker) -> None:
    """In the worker, before it serves: start the runtime of the app it loaded."""
    from firmware_bridge.heap import settle_heap
    from web import start_runtime
    from web.runtime.operator import OperatorKeyError

    app = worker.wsgi
    try:
        runtime = start_runtime(app)
    except OperatorKeyError as err:
        print(f"gridbid: {err}", file=sys.stderr, flush=True)
        # A boot error: the arbiter stops instead of starting the worker again and again.
        sys.exit(Arbiter.WORKER_BOOT_ERROR)
    settle_heap()  # the runtime stays for the worker's life: no full collection walks it
    for listener in worker.sockets:
        listener.listen()
    worker.log.info("portal ready: listening on %s", ", ".join(map(str, worker.sockets)))
    worker.app.banner(runtime)  # worker.app: the PortalServer that forked it


def worker_exit(server: Arbiter, worker: ThreadWorker) -> None:
    """When the worker ends (stop, timeout abort, crash of its loop): stop its runtime."""
    app = getattr(worker, "wsgi", None)  # unset in the arbiter, which calls this hook too
    if isinstance(app, Flask):
        from web import stop_runtime

        stop_runtime(app)


class PortalServer(BaseApplication):
    """gunicorn running the portal (gunicorn's documented custom application)."""

    def __init__(self, overrides: dict[str, Any], settings: dict[str, Any], banner: Banner):
        self.overrides = overrides
        self.settings = settings
        self.banner = banner
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.settings.items():
            if key in self.cfg.settings:  # control_socket_disable is new in gunicorn 25.1
                self.cfg.set(key, value)

    def run(self) -> None:
        """Run the arbiter with its listeners bound here and listening once ready."""
        arbiter = Arbiter(self)
        arbiter.LISTENERS = late_listeners(self, arbiter.log)
        arbiter.run()

    def load(self) -> Flask:
        """In the worker, after the fork (no preload): the app; its runtime starts next."""
        from web import create_app

        return create_app(self.overrides)


def serve(overrides: dict[str, Any], host: str, port: int, banner: Banner) -> int:
    """Serve the portal with gunicorn until it is stopped; the arbiter's exit status."""
    try:
        portal_config = server_config(overrides)
        # Here, in the arbiter: a worker failing in create_app would only be started again.
        check_queue_url(portal_config.get("MESSAGE_QUEUE") or "")
        settings = options(portal_config, host, port)
    except ValueError as err:
        print(f"gridbid: {err}", file=sys.stderr)
        return 2
    try:
        PortalServer(overrides, settings, banner).run()
    except OSError as err:  # the port: in use, or not this machine's
        print(f"gridbid: cannot listen on {bind_address(host, port)}: {err.strerror}",
              file=sys.stderr)
        return 1
    except SystemExit as stop:  # the arbiter halts with sys.exit
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
