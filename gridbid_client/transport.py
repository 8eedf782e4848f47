"""How the client reaches a portal: over HTTP with requests, or through Flask's test client."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit

from gridbid_client.errors import ClientError

DEFAULT_PORTS = {"http": 80, "https": 443}


class Transport(ABC):
    """One request to the portal, answered as (status, json); cookies kept between calls."""

    #: The origin the portal is reached at: a login message must name it.
    scheme: str
    authority: str

    @abstractmethod
    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send one request; the answer's status and its decoded JSON (None when empty)."""

    def same_authority(self, domain: str) -> bool:
        """Whether an RFC 3986 authority (host[:port]) names this portal; default ports implied."""
        return _host_port(domain, self.scheme) == _host_port(self.authority, self.scheme)


def _host_port(authority: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{authority}")
    try:
        port = parts.port
    except ValueError:  # a port that is not a number names nothing
        return (authority, -1)
    return ((parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme))


class HttpTransport(Transport):
    """A portal at a URL, through one requests.Session (its cookies are the login session)."""

    def __init__(self, base_url: str, timeout: float = 30.0, session: Any = None) -> None:
        import requests

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{base_url!r} is not an http(s) URL of a portal")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.authority = parts.netloc
        self.timeout = timeout
        self.session = session or requests.Session()
        self._errors = requests.RequestException

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send one request with the session's cookies; connection trouble is a ClientError."""
        url = self.base_url + path
        try:
            answer = self.session.request(
                method, url, json=body, headers=headers, timeout=self.timeout
            )
        except self._errors as err:
            raise ClientError(0, f"cannot reach {url}: {err}", type(err).__name__) from err
        return answer.status_code, _decode(answer.content, answer.text)


class FlaskTransport(Transport):
    """A portal app in this process, through its Flask test client (for tests)."""

    def __init__(self, test_client: Any, authority: str = "localhost") -> None:
        self.client = test_client
        self.scheme = "http"
        self.authority = authority  # the host Flask's test client sends by default

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send one request through the test client, which keeps the session cookie."""
        answer = self.client.open(path, method=method, json=body, headers=headers or {})
        return answer.status_code, _decode(answer.data, answer.get_data(as_text=True))


def _decode(content: bytes, text: str) -> Any:
    """The answer's JSON; a non-JSON answer (a proxy's error page) becomes an error body."""
    import json

    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return {"error": text.strip()[:200] or "the portal answered something that is not JSON"}
