"""Meter accounts: keys of this machine's boards and their enrollment on the chain."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geth_private.keystore import MachineKeys
from marketplace.ledger import CONSUMER, PRODUCER, Ledger
from marketplace.market import Market
from web.runtime.accounts import AccountDirectory

log = logging.getLogger(__name__)

def rated_power_w(spec: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    """The power a meter is enrolled for, in chain time, from its participant's spec."""
    rated = (spec.get("pv_peak_w", config["PV_PEAK_W"]) if spec["role"] == "producer"
             else spec.get("load_w", config["LOAD_W"]))
    # Emulated time runs EMULATOR_SPEED times faster than chain time, and PV noise
    # can top the peak: the rating in chain time carries both.
    return int(rated * config["EMULATOR_SPEED"] * 1.25)


class MeterEnrollment:
    """Gives each participant's board a meter account enrolled for them, then a seat."""

    def __init__(
        self, ledger: Ledger, market: Market, accounts: AccountDirectory,
        participants: Sequence[Mapping[str, Any]], config: Mapping[str, Any], data_dir: Path,
    ):
        self.ledger = ledger
        self.market = market
        self.accounts = accounts
        self.participants = list(participants)
        self.config = config
        self.keys = MachineKeys(data_dir / "meters", config["SCRYPT_N"])

    def enroll(self, spec: Mapping[str, Any], owner: str, meter: str) -> None:
        """Enroll a meter for its owner, unless it already is (meters need no Ether: they
        sign readings and send nothing)."""
        kind = PRODUCER if spec["role"] == "producer" else CONSUMER
        rated = rated_power_w(spec, self.config)
        entry = self.ledger.meter_of(meter)
        if (entry["owner"], entry["kind"], entry["rated_power_w"]) != (owner, kind, rated):
            self.ledger.enroll_meter(meter, owner, kind, rated)

    def add_local(self, spec: Mapping[str, Any], owner: str) -> None:
        """A board of this machine: its meter key (made on first use) enrolled, its owner seated."""
        meter = self.keys.get(spec["board"])
        self.enroll(spec, owner, meter.address)
        self.market.add_participant(spec["name"], owner, spec["role"], spec["board"],
                                    meter.address)

    def adopt_remote(self, board_id: str, kind: str, meter: str) -> None:
        """A remote bridge announced a board: enroll its meter for the participant it measures."""
        spec = next((p for p in self.participants if p["board"] == board_id), None)
        # Or a person who registered and whom the admin gave this board.
        seated = next((p for p in self.market.store.participants()
                       if p["board_id"] == board_id), None)
        if spec is None and seated is not None:
            spec = {"name": seated["name"], "role": seated["role"], "board": board_id}
        if spec is None or spec["role"] != kind:
            log.error("remote board %s (%s) matches no participant", board_id, kind)
            return
        owner = self.accounts.names()[spec["name"]]
        self.enroll(spec, owner, meter)
        self.market.add_participant(spec["name"], owner, spec["role"], board_id, meter)
        log.info("remote board %s of %s is online, meter %s", board_id, spec["name"], meter)
