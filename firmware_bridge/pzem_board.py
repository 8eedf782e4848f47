"""A PZEM-017 as a bridge's board: a meter with no relays, polled (it never speaks unasked)."""

from __future__ import annotations

import dataclasses

from firmware_bridge.board_uri import BoardURI
from firmware_bridge.client import BoardInfo
from firmware_bridge.errors import BridgeError
from firmware_bridge.protocol import Reading
from firmware_bridge.pzem import Pzem017


class PzemBoard:
    """What the Bridge asks of a board client, answered by a PZEM-017 on Modbus RTU.

    It has no relays and no budgets: a command to switch one is refused with a BridgeError
    (the market logs it; the other party's relay and budget still bound a deal). It counts
    one direction, which the URI's `counts` names (in: into the battery or load; out: to
    the bus); the other counter stays 0. `polled`: the bridge reads it on every heartbeat.
    """

    polled = True

    def __init__(self, uri: BoardURI, timeout: float | None = None):
        options = uri.options
        self.url = uri.text
        self.board_id = str(options["id"])
        self.kind = str(options["kind"])
        self.counts = str(options["counts"])
        self.meter = Pzem017(uri.target, address=int(options["unit"]),  # type: ignore[arg-type]
                             baudrate=int(options["baud"]),  # type: ignore[arg-type]
                             timeout=timeout or float(options["timeout"]))  # type: ignore[arg-type]
        self.info: BoardInfo | None = None
        self._closed = False
        self._failed = False  # the last read failed: offline until one answers again

    @property
    def connected(self) -> bool:
        """True while the meter answers (and until close())."""
        return not self._closed and not self._failed

    def hello(self) -> BoardInfo:
        """Who the board is, as the URI names it, once the meter has answered one read."""
        self.read()
        self.info = BoardInfo(self.board_id, self.kind, relay_count=0, protocol=0)
        return self.info

    def read(self) -> Reading:
        """One measurement; BridgeError (PzemError) when the meter does not answer."""
        if self._closed:
            raise BridgeError(f"{self.url} is closed")
        try:
            reading = self.meter.read()
        except BridgeError:
            self._failed = True
            raise
        self._failed = False
        if self.counts == "out":
            reading = dataclasses.replace(reading, wh_in=0.0, wh_out=reading.wh_in)
        return reading

    def set_relay(self, relay: int, on: bool) -> None:
        """Refused: a PZEM-017 has no relay to switch."""
        raise BridgeError(f"board {self.board_id} is a PZEM-017 meter: it has no relays")

    def set_budget(self, relay: int, wh: float | None) -> None:
        """Refused: without a relay there is nothing a budget could open."""
        raise BridgeError(f"board {self.board_id} is a PZEM-017 meter: it has no relays")

    def heartbeat(self) -> None:
        """Nothing to feed: a meter has no failsafe (the bridge polls read() instead)."""

    def close(self) -> None:
        """Close the serial port."""
        self._closed = True
        self.meter.close()
