"""The seed demo: who takes part, their emulated boards, their accounts and Ether."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from firmware_bridge.bridge import Bridge
from firmware_bridge.emulator import Microgrid
from geth_private import Keystore
from marketplace.ledger import Ledger
from web.runtime.accounts import AccountDirectory
from web.runtime.meters import MeterEnrollment
from web.runtime.operator import ETHER

DEMO_BOOK = "demo_accounts.json"  # the demo's accounts, as web.access needs to know them

# One producer with a PV emulator and battery, two consumers with loads.
DEMO = [
    {"name": "alice", "role": "producer", "passphrase": "alice-demo", "board": "pv-alice"},
    {"name": "bob", "role": "consumer", "passphrase": "bob-demo", "board": "load-bob"},
    {"name": "carol", "role": "consumer", "passphrase": "carol-demo", "board": "load-carol"},
]


def demo_addresses(book: Path) -> set[str]:
    """The addresses (lower case) of every account a demo ever seated in this data directory."""
    return set(json.loads(book.read_text())) if book.exists() else set()


def participants(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Who takes part: config PARTICIPANTS (specs like DEMO's, optionally with pv_peak_w,
    sky, load_w and a load profile each), else the seed demo's three."""
    return list(config.get("PARTICIPANTS") or DEMO)


def start_emulated_boards(
    microgrid: Microgrid, bridge: Bridge, specs: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any], link_dir: Path, remote: Collection[str],
) -> None:
    """Emulate every participant's board that no remote bridge serves; attach them here."""
    for spec in specs:
        if spec["board"] in remote:
            continue  # its bridge announces it from another machine
        if spec["role"] == "producer":
            microgrid.add_producer(
                spec["board"], pv_peak_w=spec.get("pv_peak_w", config["PV_PEAK_W"]),
                sky=spec.get("sky", config["EMULATOR_SKY"]),
            )
        else:
            microgrid.add_consumer(spec["board"], load_w=spec.get("load_w", config["LOAD_W"]),
                                   profile=spec.get("profile"))
    # Stable paths per board (as udev's /dev/serial/by-id), so an unplugged board that is
    # plugged back in is found again by the bridge.
    for device in microgrid.start(link_dir=link_dir).values():
        bridge.attach(device)


def seed_accounts(
    specs: Sequence[Mapping[str, Any]], *, keystore: Keystore, accounts: AccountDirectory,
    ledger: Ledger, meters: MeterEnrollment, funds_eth: int, remote: Collection[str],
    book: Path,
) -> list[dict[str, str]]:
    """Each participant's account (made on first run) funded and seated; their logins.

    Their passphrases are printed in the README: web.access refuses these logins from beyond
    this machine, and DEMO_ACCOUNTS is off unless `gridbid run` (or a config) turns it on.
    """
    demo = []
    for spec in specs:
        address = accounts.address_of(spec["name"]) or accounts.create(
            spec["name"], lambda: keystore.new(spec["passphrase"])  # noqa: B023 (called at once)
        )
        # On a persistent chain the accounts keep what they had: top up, never pile up.
        if ledger.eth_balance(address) < funds_eth * ETHER // 2:
            ledger.fund(address, funds_eth * ETHER)
        # The demo's keys are the portal's to use (their passphrases are published): each
        # signs its own meter's consent, as the owner's page would.
        key = keystore.unlock(address, spec["passphrase"])
        if spec["board"] in remote:
            meters.demo_keys[address] = key  # signs when its bridge claims the board
        else:
            meters.add_local(spec, address, key)
        demo.append({"name": spec["name"], "address": address, "role": spec["role"],
                     "passphrase": spec["passphrase"], "board": spec["board"]})
    # Remembered as the demo's for good: their passphrases stay published after DEMO_ACCOUNTS
    # is turned off, so web.access keeps refusing them from beyond this machine.
    marked = demo_addresses(book) | {a["address"].lower() for a in demo}
    book.write_text(json.dumps(sorted(marked), indent=1))
    return demo
