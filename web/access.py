"""Where a request comes from: the client's address (through the proxies trusted) and loopback."""

from __future__ import annotations

import ipaddress

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from web.errors import PortalError
from web.state import portal

# Headers a reverse proxy adds; seen while no proxy is trusted, they mean one stands between.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class DemoLoginRefused(PortalError):
    """A demo account (its passphrase is published) tried to log in from beyond this machine."""

    status = 403

    def __init__(self) -> None:
        super().__init__(
            "demo accounts log in only from this machine: their passphrases are published; "
            "register an account of your own"
        )


def trust_proxies(app: Flask) -> None:
    """Believe X-Forwarded-For/-Proto/-Host from PROXY_HOPS proxies in front (0: from none)."""
    hops = int(app.config["PROXY_HOPS"])
    # x_for=0 makes ProxyFix leave REMOTE_ADDR alone, so a spoofed header changes nothing.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


class UnknownHost(PortalError):
    """A request names a host the portal is not served at (a sign-in could be phished)."""

    status = 400


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def portal_host() -> str:
    """The host (and port) the request reached, when the portal is served there: PORTAL_HOSTS
    (comma-separated host[:port]), or this machine's own names when that is empty.

    A Sign-In with Ethereum message names this host so that a wallet can warn when another
    site asks; believed from the Host header alone, any site could have the portal write its
    name, and the warning would never come."""
    host = request.host
    allowed = [h.strip().lower() for h in str(current_app.config["PORTAL_HOSTS"]).split(",")
               if h.strip()]
    name = host.lower().rsplit(":", 1)[0] if not host.endswith("]") else host.lower()
    if host.lower() in allowed or (not allowed and name in LOOPBACK_NAMES):
        return host
    raise UnknownHost(f"this portal is not served at {host[:100]}: sign in at its own address "
                      "(the operator lists it in PORTAL_HOSTS)")


def client_address() -> str:
    """The client's IP address: the peer's, or what the trusted proxies say it was."""
    return request.remote_addr or ""


def is_loopback(addr: str) -> bool:
    """Whether an IP address is this machine's own (127.0.0.0/8, ::1, ::ffff:127.x.y.z)."""
    try:
        ip = ipaddress.ip_address(addr.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return False  # a name or garbage is not known to be this machine
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def from_this_machine() -> bool:
    """Whether this request comes from a client on this machine, not through a proxy."""
    if not is_loopback(client_address()):
        return False
    # With no proxy trusted, a proxy on this machine makes every client look local: its
    # forwarding headers say the request came from further away.
    trusted = int(current_app.config["PROXY_HOPS"]) > 0
    return trusted or not any(name in request.headers for name in FORWARDING_HEADERS)


def refuse_demo_beyond_loopback(address: str) -> None:
    """Refuse (DemoLoginRefused) a demo account's login unless it comes from this machine."""
    runtime = portal().runtime
    if runtime.is_demo(address) and not from_this_machine():
        raise DemoLoginRefused()
