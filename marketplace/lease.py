"""Leadership among portal workers sharing one store: the holder of a named lease does the job."""

from __future__ import annotations

import logging
import os
import secrets
import socket

from marketplace.store import Store

log = logging.getLogger(__name__)

SETTLEMENT = "settlement"  # the lease of the worker that sends the market's transactions


class Lease:
    """One named lease for this worker: always held on a store of its own, else while renewed."""

    def __init__(self, store: Store, name: str, ttl_s: float):
        self.store = store
        self.name = name
        self.ttl_s = ttl_s  # a holder silent this long is replaced by another worker
        # Names this process among the workers sharing the store (leases, logs).
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.held = not store.shared

    def renew(self) -> bool:
        """Take or keep the lease (from a worker that stopped renewing it); whether held now."""
        if not self.store.shared:
            return True
        held = self.store.hold_lease(self.name, self.worker, self.ttl_s)
        if held != self.held:
            log.info("worker %s %s %s", self.worker, "takes" if held else "leaves", self.name)
        self.held = held
        return held

    def release(self) -> None:
        """Give the lease up (a clean stop), so another worker takes it at once."""
        if not (self.store.shared and self.held):
            return
        try:
            self.store.release_lease(self.name, self.worker)
        except Exception as err:
            log.warning("%s lease not released: %s", self.name, err)
