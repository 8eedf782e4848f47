"""What a party with access to the workers' Redis can do through Socket.IO's message queue,
done as it would: JSON published on Flask-SocketIO's channel with its own Redis client, to a
real bridge (emulated board on a pty) connected to one of two Flask-SocketIO servers sharing
that queue (docs/SECURITY.md, threat 76).

The servers are Flask-SocketIO's own with the portal's client manager (web.signed_queue, as
create_app builds it), not whole portals: what is under test is the queue, which every worker
obeys, and the bridge, which obeys every command its connection brings.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from flask import Flask, request
from flask_socketio import SocketIO
from werkzeug.serving import make_server

from firmware_bridge.board_bus import bus_key
from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for
from web.signed_queue import (
    CHANNEL,
    LOG_EVERY_S,
    MAX_AGE_S,
    SignedRedisManager,
    queue_key,
    seal,
    signed_manager,
)

ROOT = Path(__file__).resolve().parents[2]
BOARD = "load-carol"
SECRET = "the workers' shared SECRET_KEY"


def _server(redis_url: str, sids: list[str]) -> tuple[SocketIO, Any]:
    """A Flask-SocketIO server on the signed queue that admits a bridge and takes its hello."""
    app = Flask(__name__)
    sio = SocketIO(app, async_mode="threading", client_manager=signed_manager(redis_url, SECRET))

    @sio.on("connect", namespace="/bridge")
    def connected(auth=None):
        sids.append(request.sid)

    @sio.on("hello", namespace="/bridge")
    def hello(data):
        return {"contracts": [], "chain_id": 1337, "token": Account.create().address}

    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    sio.server.manager_initialized = True  # as web.bridges.hear_queue does for a worker
    sio.server.manager.initialize()
    return sio, http


@pytest.fixture
def workers(redis_url: str) -> Iterator[tuple[str, SocketIO, SocketIO]]:
    """Two servers on one queue: the bridge's (its URL) and another worker's."""
    sids: list[str] = []
    own, own_http = _server(redis_url, sids)
    other, other_http = _server(redis_url, [])
    try:
        yield f"http://127.0.0.1:{own_http.server_port}", own, other, sids
    finally:
        own_http.shutdown()
        other_http.shutdown()


@pytest.fixture
def bridge(workers) -> Iterator[tuple[Bridge, str, SocketIO]]:
    """A consumer's board on a pty behind a real bridge, connected to the first worker; the
    second worker reaches it only through the queue."""
    url, _own, other, sids = workers
    grid = Microgrid(speed=60.0, start_hour=11.0, seed=5)
    grid.add_consumer(BOARD, load_w=10.0)
    bridge = Bridge(heartbeat_s=0.5, meter_keys={BOARD: Account.create()}.__getitem__)
    remote = None
    try:
        for device in grid.start().values():
            bridge.attach(device)
        remote = RemoteBridge(bridge, url, "token", bridge_id="site")
        remote.connect()
        wait_for(lambda: sids, timeout=10, what="the bridge's connection")
        yield bridge, sids[-1], other
    finally:
        if remote is not None:
            remote.close()
        bridge.close()
        grid.stop()


def _command(sio: SocketIO, sid: str, command: dict[str, Any]) -> Any:
    return sio.call("command", {"board_id": BOARD, **command}, to=sid, namespace="/bridge",
                    timeout=10)


def _forged_emit(sid: str, on: bool) -> dict[str, Any]:
    return {"method": "emit", "event": "command", "namespace": "/bridge", "room": sid,
            "data": [{"board_id": BOARD, "action": "set_relay", "on": on, "relay": 0}],
            "skip_sid": None, "callback": None, "host_id": "attacker"}


def _settled(board: Bridge, sio: SocketIO, sid: str, wh: float) -> None:
    """Send an honest command through the other worker after whatever was published before
    it: once the board reports that budget, anything delivered earlier ran before it."""
    assert _command(sio, sid, {"action": "set_budget", "wh": wh}) == {"ok": True}
    wait_for(lambda: board.read(BOARD).budgets[0] == wh, timeout=10,
             what="a reading after the commands")


def _publish(redis_url: str, *texts: str | bytes) -> None:
    import redis

    attacker = redis.Redis.from_url(redis_url)
    try:
        for text in texts:
            attacker.publish(CHANNEL, text)
    finally:
        attacker.close()


def test_a_command_forged_on_the_socketio_queue_does_not_switch_a_relay(redis_url, bridge):
    board, sid, other = bridge
    board.set_relay(BOARD, False)
    _publish(redis_url, json.dumps(_forged_emit(sid, True)))
    _settled(board, other, sid, 77.0)  # an honest call through two workers still answers
    assert board.read(BOARD).relays[0] is False, "a forged command closed the board's relay"


def test_an_honest_command_through_another_worker_switches_the_relay(bridge):
    board, sid, other = bridge
    board.set_relay(BOARD, False)
    assert _command(other, sid, {"action": "set_relay", "on": True}) == {"ok": True}
    wait_for(lambda: board.read(BOARD).relays[0] is True, timeout=10,
             what="the relay the other worker closed")


def test_a_replayed_stale_or_otherwise_keyed_command_is_dropped(redis_url, bridge):
    import redis

    board, sid, other = bridge
    listener = redis.Redis.from_url(redis_url).pubsub()
    try:
        listener.subscribe(CHANNEL)
        wait_for(lambda: (listener.get_message(timeout=0.1) or {}).get("type") == "subscribe",
                 timeout=10, what="the attacker's subscription")
        # The attacker records a worker's honest "close the relay", then the relay is opened.
        assert _command(other, sid, {"action": "set_relay", "on": True}) == {"ok": True}
        recorded = _recorded_close(listener, sid)
        assert _command(other, sid, {"action": "set_relay", "on": False}) == {"ok": True}
    finally:
        listener.close()
    now = time.time()
    stale = seal(queue_key(SECRET), CHANNEL, _forged_emit(sid, True), now - MAX_AGE_S - 5)
    board_keyed = seal(bus_key(SECRET), CHANNEL, _forged_emit(sid, True), now)
    _publish(redis_url, recorded, json.dumps(stale), json.dumps(board_keyed))
    _settled(board, other, sid, 55.0)
    assert board.read(BOARD).relays[0] is False, "a replayed or stale command closed the relay"


def _recorded_close(listener: Any, sid: str) -> bytes:
    """The text of the honest emit that closed the relay, as the attacker's client saw it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = listener.get_message(timeout=1.0)
        if item is None or item["type"] != "message":
            continue
        message = json.loads(json.loads(item["data"])["body"])["m"]
        data = message.get("data") or [{}]
        if message.get("event") == "command" and data[0].get("on") is True:
            return item["data"]
    raise AssertionError("the honest command never crossed the queue")


def test_drops_are_logged_once_per_sender_in_a_while(caplog):
    manager = SignedRedisManager("redis://127.0.0.1:1/0", key=queue_key(SECRET))  # no I/O
    now = time.time()
    honest = json.dumps(seal(queue_key(SECRET), CHANNEL, {"method": "emit", "host_id": "w1"},
                             now))
    with caplog.at_level(logging.WARNING, logger="web.signed_queue"):
        assert manager.admit(honest, now) == {"method": "emit", "host_id": "w1"}
        assert manager.admit(honest, now + 1) is None  # taken already
        for _ in range(5):
            assert manager.admit(json.dumps(_forged_emit("sid", True)), now) is None
        assert manager.admit(b"\x80 not json", now) is None
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 3, lines  # w1's replay, the attacker's first forgery, "?"'s text
        assert "'attacker'" in lines[1] and "not a signed envelope" in lines[1]
        # A while later, under another key (the board bus's): the tag is wrong.
        other = json.dumps(seal(bus_key(SECRET), CHANNEL, _forged_emit("sid", True),
                                now + LOG_EVERY_S))
        assert manager.admit(other, now + LOG_EVERY_S) is None
    assert len(caplog.records) == 4
    assert "tag is missing or wrong (4 more dropped" in caplog.records[-1].getMessage()


def test_the_queue_key_is_not_the_board_bus_key_and_a_non_redis_queue_is_refused(tmp_path):
    assert queue_key(SECRET) != bus_key(SECRET)
    with pytest.raises(ValueError, match="secret"):
        queue_key("")
    env = {**os.environ, "GRIDBID_MESSAGE_QUEUE": "amqp://guest@127.0.0.1//"}
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "run", "--data-dir", str(tmp_path), "--no-demo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "MESSAGE_QUEUE amqp:// is not supported: give a Redis URL" in done.stderr
    assert "Traceback" not in done.stderr and "Starting gunicorn" not in done.stderr


def test_the_portal_signs_its_socketio_queue(tmp_path, redis_url):
    from web import create_app
    from web.extensions import socketio

    create_app({"TESTING": True, "CHAIN_URI": "embedded://", "SECRET_KEY": SECRET,
                "DATA_DIR": str(tmp_path / "var"), "MESSAGE_QUEUE": redis_url})
    assert isinstance(socketio.server.manager, SignedRedisManager)
    assert socketio.server.manager.channel == CHANNEL
