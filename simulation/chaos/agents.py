"""Participants who act over HTTP only, through gridbid_client, and note what was acknowledged.

Each agent signs in (SIWE) on whichever portal worker answers, as a browser behind nginx's
failover would, and signs its own standing orders; an order is *acknowledged* when a worker
answered 201 with its hash. Connection trouble and 5xx answers move the agent to the next
worker and are retried; refusals (4xx) are noted, not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount

from gridbid_client.client import Client, ClientError
from marketplace.contract_enums import EscrowMarket

CAP_WEI_PER_KWH = 2 * 10**16  # 0.02 ETH per kWh
FLOOR_WEI_PER_KWH = 10**16
DEPOSIT_ETH = "0.5"


@dataclass
class Ack:
    """One acknowledged order: who, its hash, when, through which worker."""

    name: str
    address: str
    kind: str
    hash: str
    at: float
    worker: str


@dataclass
class AgentLog:
    """What the agents did: acknowledged orders, refusals and retries."""

    acks: list[Ack] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0


RATE_LIMITED_WAIT_S = 2.5  # the portal's sign-in limit asks for a couple of seconds


def _transient(err: ClientError) -> bool:
    """Connection trouble or a server error: another worker (or a later try) may answer."""
    return err.status == 0 or err.status >= 500


class Agent:
    """One participant: its key, the workers' URLs, a session on each it has used."""

    def __init__(self, spec: dict[str, Any], key: LocalAccount, urls: Callable[[], list[str]],
                 log: AgentLog) -> None:
        self.name, self.role = spec["name"], spec["role"]
        self.kind = "sell" if self.role == "producer" else "buy"
        self.key = key
        self.urls = urls  # the workers' URLs, asked each time (a worker may be down)
        self.log = log
        self.sessions: dict[str, Client] = {}
        self.placed = 0

    @property
    def address(self) -> str:
        """The participant's address."""
        return self.key.address

    def _session(self, url: str) -> Client:
        client = self.sessions.get(url)
        if client is None:
            client = Client(url, self.key, timeout=10)
            client.login()
            self.sessions[url] = client
        return client

    def call(self, what: Callable[[Client], Any], attempts: int = 60) -> tuple[Any, str]:
        """what(session) on the first worker that answers; (its answer, the worker's URL)."""
        last: ClientError | None = None
        for attempt in range(attempts):
            urls = self.urls()
            url = urls[attempt % len(urls)]
            try:
                return what(self._session(url)), url
            except ClientError as err:
                if not _transient(err) and err.status not in (401, 429):
                    raise
                last = err
                self.log.retries += 1
                # A worker that answered (a 503 while the chain is down) keeps the session:
                # signing in afresh on every retry is what its sign-in rate limit refuses.
                if err.status in (0, 401):
                    self.sessions.pop(url, None)  # sign in afresh there next time
                time.sleep(RATE_LIMITED_WAIT_S if err.status == 429 else 0.25)
        raise last or ClientError(0, "no worker answered", "Unreachable")

    def setup(self) -> None:
        """Consumers escrow Ether for the community market; everyone trades in it."""
        if self.role == "consumer":
            queued, _ = self.call(lambda c: c.deposit(DEPOSIT_ETH, EscrowMarket.COMMUNITY))
            self.call(lambda c: c.wait_tx(queued["tx_hash"], timeout=60))
        self.call(lambda c: c.set_mode("intervals"))

    def limits(self) -> dict[str, Any]:
        """This order's limits; each differs from the last (equal limits would be one order)."""
        n = self.placed
        if self.kind == "sell":
            return {"floor_wei_per_kwh": str(FLOOR_WEI_PER_KWH + n), "reserve_wh": 100,
                    "valid_s": 86400}
        return {"cap_wei_per_kwh": str(CAP_WEI_PER_KWH - n), "expected_wh": 40 + n % 5,
                "max_wh_per_interval": 80, "daily_budget_wei": str(10**17), "valid_s": 86400}

    def place(self) -> Ack | None:
        """Sign and send a new standing order; its acknowledgement (None if refused)."""
        limits = self.limits()
        self.placed += 1
        try:
            answer, url = self.call(lambda c: c.set_order(self.kind, **limits))
        except ClientError as err:
            self.log.refused.append({"name": self.name, "error": str(err), "at": time.time()})
            return None
        ack = Ack(self.name, self.address, self.kind, answer["hash"], time.time(), url)
        self.log.acks.append(ack)
        return ack

    def finish(self) -> None:
        """Cancel the standing order, so the day's last positions can settle."""
        try:
            self.call(lambda c: c.cancel_order())
        except ClientError as err:
            self.log.refused.append({"name": self.name, "error": f"cancel: {err}",
                                     "at": time.time()})
