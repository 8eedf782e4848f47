"""Meter boards: the serial line protocol, a board emulator on a pty, and the bridge client."""
