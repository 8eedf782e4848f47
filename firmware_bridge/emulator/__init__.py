"""Software twin of the seed's hardware: PV emulator, lead-acid battery, loads, meters, relays."""

from firmware_bridge.emulator.microgrid import Microgrid

__all__ = ["Microgrid"]
