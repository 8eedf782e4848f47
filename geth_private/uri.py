"""The one function that picks a chain backend from a URI (web3's providers/auto.py)."""

from __future__ import annotations

from urllib.parse import urlparse

from geth_private.backend import ChainBackend
from geth_private.errors import ChainError


def backend_from_uri(uri: str, data_dir: str | None = None) -> ChainBackend:
    """Pick the backend for a chain URI: embedded://, anvil://, geth://, http(s)://, ws(s)://, ipc.

    data_dir is where a managed node (anvil, geth) keeps its state unless the URI names a path.
    """
    # Each backend is imported only when its scheme is asked for: the embedded one pulls in
    # py-evm, the geth one py-geth, and a portal on anvil needs neither.
    parsed = urlparse(uri)
    scheme = parsed.scheme or ("ipc" if uri.endswith(".ipc") else uri.rstrip(":/"))
    if scheme == "embedded":
        from geth_private.embedded import EmbeddedBackend

        return EmbeddedBackend(uri)
    if scheme == "anvil":
        from geth_private.anvil import AnvilBackend

        return AnvilBackend(uri, data_dir)
    if scheme == "geth":
        from geth_private.geth import GethBackend

        return GethBackend(uri, data_dir)
    if scheme in ("http", "https", "ws", "wss", "ipc"):
        from geth_private.remote import RemoteBackend

        return RemoteBackend(uri)
    raise ChainError(
        f"unsupported chain URI {uri!r}: use embedded://, anvil://, geth://, http(s)://, "
        "ws(s):// or the path of a node's .ipc file"
    )
