"""Flask extensions created unbound here and bound to the app in create_app."""

from flask_socketio import SocketIO

# threading mode: gevent/eventlet stall while the in-process EVM holds the GIL.
socketio = SocketIO(async_mode="threading")
