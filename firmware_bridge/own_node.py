"""This machine's own clique signer node, as its bridge reports it and toggles its sealing.

On the seed's other machines `gridbid bridge` runs next to the node `gridbid chain join` started
(docs/GETH.md): the bridge tells the portal that node's signer, whether it seals and its peers,
and takes the portal's sealing toggle for it, but only when the machine's owner started the
bridge with --sealing-toggle, and only as the node's backend allows: a stop that would leave
fewer than floor(N/2)+1 signers sealing is refused here, on the owner's machine, whatever the
portal asked (geth_private.clique). The portal cannot do more to the node than that.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from geth_private.errors import ChainError, QuorumRefused

log = logging.getLogger(__name__)


class SealingNode(Protocol):
    """What the bridge needs of its node's backend (a GethBackend attached to it)."""

    def sealer(self) -> str | None: ...
    def is_mining(self) -> bool: ...
    def signers(self) -> list[str]: ...
    def sealing_signers(self) -> list[str]: ...
    def peers(self) -> list[dict[str, Any]]: ...
    def set_mining(self, on: bool) -> None: ...


class OwnNode:
    """The bridge's view of its machine's node: a status to report, a toggle to take or refuse."""

    def __init__(self, node: SealingNode, where: str, *, toggles: bool):
        self.node = node
        self.where = where  # how the node is named in errors (its RPC URL)
        self.toggles = toggles  # the owner's --sealing-toggle: may the portal toggle it?
        self._said: str | None = None  # the last trouble logged, so a dead node logs once

    def status(self) -> dict[str, Any]:
        """{signer, sealing, peers, signers, sealing_signers, toggles}, or {error, toggles}
        when the node does not answer (logged once until it answers again)."""
        try:
            status = {
                "signer": self.node.sealer(),
                "sealing": bool(self.node.is_mining()),
                "peers": len(self.node.peers()),
                "signers": len(self.node.signers()),
                "sealing_signers": len(self.node.sealing_signers()),
                "toggles": self.toggles,
            }
        except (ChainError, NotImplementedError, OSError, ValueError, KeyError) as err:
            why = f"this machine's node at {self.where} does not answer: {err}"
            if why != self._said:
                log.warning("%s", why)
                self._said = why
            return {"error": why, "toggles": self.toggles}
        if self._said is not None:
            log.info("this machine's node at %s answers again", self.where)
            self._said = None
        return status

    def set_sealing(self, on: Any) -> dict[str, Any]:
        """The portal's toggle: {"ok": True, "node": status} or {"error": a sentence}."""
        if not isinstance(on, bool):
            log.warning("refused a sealing toggle with on=%r (not true or false)", on)
            return {"error": "a sealing toggle says on: true or false"}
        if not self.toggles:
            log.warning("refused a sealing toggle (on=%s): this bridge was started without "
                        "--sealing-toggle", on)
            return {"error": "this machine's bridge does not take sealing toggles: its owner "
                             "starts it with --sealing-toggle to allow them"}
        try:
            self.node.set_mining(on)
        except QuorumRefused as err:
            log.info("sealing stop refused: %s", err)
            return {"error": f"Your node keeps sealing: {err}."}
        except (ChainError, NotImplementedError, OSError, ValueError) as err:
            log.warning("sealing toggle (on=%s) failed: %s", on, err)
            return {"error": f"this machine's node at {self.where} did not take the toggle: "
                             f"{err}"}
        log.info("sealing %s by the portal's toggle", "started" if on else "stopped")
        return {"ok": True, "node": self.status()}


def attach_own_node(uri: str | None, data_dir: str, *, toggles: bool) -> OwnNode:
    """The node `gridbid chain join` (or start) runs on this data directory, attached through
    its geth:// URI (default: the one that node was started with, from its record there).

    Raises ChainError saying what to run when no geth node runs there.
    """
    from geth_private.cli import running_record
    from geth_private.geth import GethBackend
    from geth_private.uri import backend_from_uri

    running = running_record(Path(data_dir), "geth")
    if running is None:
        raise ChainError(f"no geth node runs from {data_dir}: start it with `gridbid chain "
                         "join --genesis FILE` (or `gridbid chain start`) on the same "
                         "--data-dir first")
    url, uri = running["url"], uri or running["uri"]
    backend = backend_from_uri(uri, data_dir)
    if not isinstance(backend, GethBackend):
        raise ChainError(f"--node {uri} is not a geth:// URI: give the one `gridbid chain "
                         "join` runs with on this machine")
    backend.attach(url)
    return OwnNode(backend, url, toggles=toggles)
