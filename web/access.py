"""Where a request comes from (through trusted proxies), and what only this machine may do."""

from __future__ import annotations

import ipaddress

from flask import request

from web.errors import PortalError
from web.state import portal


class DemoBeyondLoopback(PortalError):
    """A demo account's login from another machine: its passphrase is printed for all to see."""

    status = 403

    def __init__(self) -> None:
        super().__init__("demo accounts log in only from this machine (their passphrases are "
                         "printed); register an account of your own")


def client_address() -> str:
    """The client's address, as the trusted proxies forwarded it (ProxyFix, PROXY_HOPS)."""
    return request.remote_addr or "?"


def is_loopback(address: str) -> bool:
    """Whether an address is this machine's own (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def refuse_demo_beyond_loopback(address: str) -> None:
    """A demo (or demo admin) account signs in only from a loopback client."""
    rt = portal().runtime
    demo = {a["address"] for a in rt.demo_accounts + rt.admin_accounts}
    if address in demo and not is_loopback(client_address()):
        raise DemoBeyondLoopback()
