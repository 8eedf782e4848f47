"""Tests of the firmware_bridge layer: protocol, energy models, boards over ptys, bridge."""
