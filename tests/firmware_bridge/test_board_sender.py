"""A remote board's command queue: the latest state wins, in order, retried after a failure.

The send function here is a plain recorder standing in for a bridge (the real one over
Socket.IO is in tests/web/test_silent_bridge.py); threading.Events order the steps.
"""

from __future__ import annotations

import threading

from firmware_bridge.board_sender import BoardSender
from firmware_bridge.errors import BridgeError
from tests.common import wait_for


class Recorder:
    """Answers commands; the first one waits until `go` is set (a bridge slow to answer)."""

    def __init__(self, fail_first: bool = False):
        self.sent: list[dict] = []
        self.started = threading.Event()
        self.go = threading.Event()
        self.fail_first = fail_first

    def __call__(self, command):
        if not self.sent:
            self.started.set()
            self.go.wait()
        self.sent.append(command)
        if self.fail_first and len(self.sent) == 1:
            raise BridgeError("no answer")


def test_commands_queued_while_the_bridge_is_busy_collapse_to_the_latest():
    bridge = Recorder()
    sender = BoardSender("b", bridge)
    sender.put(("set_budget", 0), {"action": "set_budget", "wh": 30})
    assert bridge.started.wait(10)
    sender.put(("set_relay", 0), {"action": "set_relay", "on": True})
    sender.put(("set_relay", 0), {"action": "set_relay", "on": False})
    sender.put(("set_budget", 0), {"action": "set_budget", "wh": None})
    assert not sender.idle()
    bridge.go.set()
    wait_for(sender.idle, what="the queue to drain")
    # The budget in flight, then the relay's last state, then the budget's: in change order.
    assert bridge.sent == [{"action": "set_budget", "wh": 30},
                           {"action": "set_relay", "on": False},
                           {"action": "set_budget", "wh": None}]
    sender.close()


def test_a_failed_command_is_sent_again():
    bridge = Recorder(fail_first=True)
    sender = BoardSender("b", bridge, backoff_s=0.01)
    sender.put(("set_relay", 0), {"action": "set_relay", "on": False})
    bridge.go.set()
    wait_for(sender.idle, what="the retry")
    assert bridge.sent == [{"action": "set_relay", "on": False}] * 2
    sender.close()
