"""What a party with access to the workers' Redis can do through Socket.IO's message queue,
done as it would: one JSON `emit` published on Flask-SocketIO's channel with its own Redis
client, to a real bridge (emulated board on a pty) connected to a Flask-SocketIO server on
that queue (docs/SECURITY.md, threat 76).

The server is Flask-SocketIO's own with the portal's options, not the portal: what is under
test is the queue, which carries unauthenticated JSON, and the bridge, which obeys every
command its connection brings. A strict xfail: it fails the day a forged command stops
reaching the board, and the threat can be marked handled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from eth_account import Account
from flask import Flask, request
from flask_socketio import SocketIO
from werkzeug.serving import make_server

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from firmware_bridge.remote import RemoteBridge
from tests.common import wait_for

BOARD = "load-carol"


@pytest.fixture
def queue_server(redis_url: str) -> Iterator[tuple[str, list[str], SocketIO]]:
    """A Flask-SocketIO server on the Redis queue that admits a bridge and takes its hello."""
    app = Flask(__name__)
    sio = SocketIO(app, async_mode="threading", message_queue=redis_url)
    sids: list[str] = []

    @sio.on("connect", namespace="/bridge")
    def connected(auth=None):
        sids.append(request.sid)

    @sio.on("hello", namespace="/bridge")
    def hello(data):
        return {"contracts": [], "chain_id": 1337, "token": Account.create().address}

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", sids, sio
    finally:
        http.shutdown()


@pytest.fixture
def bridge(queue_server) -> Iterator[tuple[Bridge, str, SocketIO]]:
    """A consumer's board on a pty behind a real bridge, connected to the server."""
    url, sids, sio = queue_server
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
        yield bridge, sids[-1], sio
    finally:
        if remote is not None:
            remote.close()
        bridge.close()
        grid.stop()


@pytest.mark.xfail(strict=True, reason="open (threat 76): the Socket.IO queue carries "
                   "unauthenticated JSON and a bridge obeys every command its connection brings")
def test_a_command_forged_on_the_socketio_queue_does_not_switch_a_relay(redis_url, bridge):
    import redis

    board, sid, sio = bridge
    board.set_relay(BOARD, False)
    attacker = redis.Redis.from_url(redis_url)
    try:
        attacker.publish("flask-socketio", json.dumps({
            "method": "emit", "event": "command", "namespace": "/bridge", "room": sid,
            "data": [{"board_id": BOARD, "action": "set_relay", "on": True, "relay": 0}],
            "skip_sid": None, "callback": None, "host_id": "attacker"}))
    finally:
        attacker.close()
    # The server's own command goes through the same queue after the forged one: once the
    # board reports its budget, the forged command (if delivered) ran before it.
    answer = sio.call("command", {"board_id": BOARD, "action": "set_budget", "wh": 77.0},
                      to=sid, namespace="/bridge", timeout=10)
    assert answer == {"ok": True}
    wait_for(lambda: board.read(BOARD).budgets[0] is not None, timeout=10,
             what="a reading after both commands")
    assert board.read(BOARD).relays[0] is False, "a forged command closed the board's relay"
