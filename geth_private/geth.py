"""geth as a managed child process on a private network: datadir, keys, life cycle, peers."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
from pathlib import Path
from typing import IO, Any

from eth_account.signers.local import LocalAccount
from geth.exceptions import PyGethException, PyGethGethError
from geth.main import get_geth_version_info_string
from geth.process import BaseGethProcess
from geth.types import GethKwargsTypedDict
from geth.utils.timeout import Timeout
from geth.wrapper import construct_popen_command
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint

from geth_private.backend import MINING_TOGGLE, PEERS, ChainBackend
from geth_private.clique import CliqueSigners
from geth_private.errors import CapabilityMissing, ChainError, ChainUnavailable
from geth_private.genesis import clique_signers, make_genesis, read_genesis
from geth_private.geth_config import (
    KEYSTORE,
    LOOPBACK,
    MIN_VERSION,
    NOT_FOUND,
    SEALER_PASS,
    capabilities_for,
    command_kwargs,
    find_geth,
    parse_geth_uri,
    parse_version,
    uses_clique,
)
from geth_private.geth_datadir import (
    check_genesis,
    first_chain_id,
    geth_init,
    initialised_genesis,
    own_key,
    refuse_broken_version,
    unlock_operator,
)
from geth_private.keystore import DEFAULT_SCRYPT_N
from geth_private.provider import NodeProvider

log = logging.getLogger(__name__)

OPERATOR_FUNDS = 10**6 * 10**18  # wei prefunded to the operator (faucet) account in the genesis
START_TIMEOUT = 60


class _NodeProcess(BaseGethProcess):
    """py-geth's process base (a context manager) on our datadir, its output in a log file."""

    # Not DevGethProcess: it imposes its own datadir layout, a published default password,
    # random ports, verbosity 5 and always --dev. Not MainnetGethProcess: it refuses a datadir.

    def __init__(self, geth_kwargs: GethKwargsTypedDict, log_file: IO[bytes]):
        super().__init__(geth_kwargs, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)

    @property
    def data_dir(self) -> str:
        return str(self.geth_kwargs["data_dir"])


class GethBackend(ChainBackend):
    """A geth child process: clique sealing on geth ≤ 1.13, --dev on ≥ 1.14; keys stay with us."""

    def __init__(
        self,
        uri: str = "geth://",
        data_dir: str | None = None,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        binary: str | None = None,
    ):
        self.uri = uri
        self.options = parse_geth_uri(uri, data_dir)
        self.scrypt_n = scrypt_n
        self.capabilities = frozenset()  # known once version() has asked the binary
        self._binary = binary  # None: GETH_BINARY, else geth on PATH
        self._version: tuple[int, int, int] | None = None
        self._stack = contextlib.ExitStack()
        self._w3: Web3 | None = None
        self._faucet: LocalAccount | None = None
        self._period: int | None = None
        self._clique: CliqueSigners | None = None  # this node's signer view, once started
        d = self.datadir = self.options.datadir
        self.keystore_dir = d / KEYSTORE  # geth's keystore: the sealer's key, never a user's
        self.log_path = d / "geth.log"
        self.genesis_path = d / "genesis.json"  # the genesis `geth init` ran on
        self.http_url = f"http://{LOOPBACK}:{self.options.http}"
        self._sealer_pass = d / SEALER_PASS
        self._operator_dir = d / "operator"  # outside geth's keystore: geth never sees this key
        self._operator_pass = d / "operator.pass"

    # -- binary and version -----------------------------------------------------------------

    def binary(self) -> str:
        """Path of the geth binary this backend runs."""
        if self._binary is None:
            self._binary = find_geth()
        return self._binary

    def version(self) -> tuple[int, int, int]:
        """geth's version, read once from `geth version`; also fixes the capability flags."""
        if self._version is None:
            binary = self.binary()
            try:
                output = get_geth_version_info_string(geth_executable=binary, nice=False)
            except PyGethException as err:
                raise ChainUnavailable(
                    f"`{binary} version` failed: point GETH_BINARY at a geth ≥ 1.13 binary ({err})"
                ) from err
            self._adopt_version(parse_version(output))
        assert self._version is not None
        return self._version

    def _adopt_version(self, version: tuple[int, int, int]) -> None:
        if version < MIN_VERSION:
            raise ChainUnavailable(f"geth {'.'.join(map(str, version))} is too old: {NOT_FOUND}")
        self._version = version
        self.capabilities = capabilities_for(version)

    @property
    def clique(self) -> bool:
        """Whether this node seals with clique (geth ≤ 1.13) rather than running --dev."""
        return uses_clique(self.version())

    # -- command line -------------------------------------------------------------------------

    def geth_kwargs(
        self, sealer: str | None, genesis: dict[str, Any] | None = None
    ) -> GethKwargsTypedDict:
        """py-geth's keyword form of our command line; `sealer` is this node's clique key."""
        if genesis is None:
            return command_kwargs(self.binary(), self.options, self.clique, sealer)
        signers = clique_signers(genesis) if self.clique else []
        return command_kwargs(
            self.binary(), self.options, self.clique, sealer,
            network_id=int(genesis["config"]["chainId"]),
            seal=sealer is not None and sealer.lower() in signers,
        )

    def process_args(self, sealer: str | None = None) -> list[str]:
        """The exact geth command line start() runs (sealer: the clique signer's address)."""
        return construct_popen_command(**self.geth_kwargs(sealer))

    # -- life cycle ---------------------------------------------------------------------------

    def init(self) -> Path:
        """Write the genesis and run `geth init` (once); the genesis file's path."""
        refuse_broken_version(self.version())
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        return self.genesis_path

    def start(self) -> None:
        """Initialise the datadir if needed, run geth, wait for its RPC, add the static peers."""
        if self._w3 is not None:
            return
        version = self.version()
        refuse_broken_version(version)
        o = self.options
        if not self.clique and (o.peers or o.genesis):
            raise CapabilityMissing(
                f"geth {'.'.join(map(str, version))} runs --dev, which turns peer-to-peer "
                "networking off: peers= and genesis= need geth 1.13 (clique)"
            )
        self.datadir.mkdir(parents=True, exist_ok=True)
        sealer, genesis = self._prepare()
        for port in (o.http, o.ws, o.authrpc) + ((o.port,) if self.clique else ()):
            if _in_use(port):
                raise ChainUnavailable(
                    f"{LOOPBACK}:{port} is already in use (another node?): stop it or pick "
                    "other ports with port=, http=, ws=, authrpc= in the geth:// URI"
                )
        self._period = genesis["config"]["clique"]["period"] if self.clique else o.period
        try:
            self._launch(self.geth_kwargs(sealer, genesis), int(genesis["config"]["chainId"]))
            self._faucet = unlock_operator(self._operator_dir, self._operator_pass, self.scrypt_n)
            if self.clique:
                self._clique = CliqueSigners(self._rpc, sealer)
                self._adopt_signers()
        except BaseException:
            self.stop()
            raise

    def attach(self, url: str) -> None:
        """Use the node `gridbid chain start` already runs on this datadir, at `url`.

        That process owns geth; this one reads the same datadir for the operator (faucet) key
        and the sealer's address, so `gridbid run` shares the node and its funded key.
        """
        if self._w3 is not None:
            return
        refuse_broken_version(self.version())
        try:
            genesis = read_genesis(self.genesis_path)
        except ValueError as err:
            raise ChainUnavailable(f"{url}: {self.datadir} holds no genesis: {err}") from err
        w3 = Web3(NodeProvider(url, timeout=10))
        try:
            answered = w3.eth.chain_id
        except (OSError, Web3Exception, ValueError) as err:
            raise ChainUnavailable(f"the node at {url} does not answer: {err}") from err
        if answered != int(genesis["config"]["chainId"]):
            raise ChainUnavailable(
                f"{url} answers with chain id {answered}, not {self.datadir}'s "
                f"{genesis['config']['chainId']}: another node holds the port"
            )
        self._w3 = w3
        self._period = genesis["config"]["clique"]["period"] if self.clique else self.options.period
        self._faucet = unlock_operator(self._operator_dir, self._operator_pass, self.scrypt_n)
        if self.clique:
            self._clique = CliqueSigners(self._rpc, self.own_key())
            self._adopt_signers()

    def network_genesis(self, signers: list[str], chain_id: int | None = None) -> dict[str, Any]:
        """A clique genesis naming `signers`, funding this machine's operator key (made here).

        The machine that makes it is the one that runs the portal: only its datadir holds the
        operator key the genesis funds.
        """
        if not self.clique:
            raise CapabilityMissing(
                f"geth {'.'.join(map(str, self.version()))} runs --dev, which has no signers or "
                "peers: a network of several machines needs geth 1.13.15"
            )
        operator = own_key(self._operator_dir, self._operator_pass, self.scrypt_n, create=True)
        return make_genesis(chain_id or self.options.networkid, {str(operator): OPERATOR_FUNDS},
                            signers=signers, period=self.options.period)

    def _launch(self, kwargs: GethKwargsTypedDict, chain_id: int) -> None:
        self._stack = contextlib.ExitStack()
        log_file = self._stack.enter_context(open(self.log_path, "ab"))
        proc = self._stack.enter_context(_NodeProcess(kwargs, log_file))
        try:
            proc.wait_for_rpc(timeout=START_TIMEOUT)
        except PyGethGethError as err:
            raise ChainUnavailable(
                f"geth exited while starting (code {err.return_code}); "
                f"the end of {self.log_path}:\n{self._log_tail()}"
            ) from err
        except Timeout as err:
            raise ChainUnavailable(
                f"geth's RPC did not open on {self.http_url} within {START_TIMEOUT} s; "
                f"see {self.log_path}"
            ) from err
        w3 = Web3(NodeProvider(self.http_url, timeout=10))
        answered = first_chain_id(w3, lambda: proc.is_alive, START_TIMEOUT, self.log_path)
        if answered != chain_id or not proc.is_alive:
            raise ChainUnavailable(
                f"{self.http_url} answers with chain id {answered}, not {chain_id}: another "
                "node holds the port; stop it or choose http= in the geth:// URI"
            )
        self._w3 = w3
        for enode in self.options.peers:
            # static-nodes.json is ignored since geth 1.11 and --bootnodes is unused with
            # --nodiscover; admin_addPeer keeps redialling, so we add the list on every start.
            # A mistyped one is warned about, not raised: the node runs, the rest still dial.
            try:
                added = self._rpc("admin_addPeer", [enode])
            except ChainError as err:
                log.warning("static peer %s not added: %s", enode, err)
                continue
            if not added:
                log.warning("geth refused static peer %s", enode)

    def stop(self) -> None:
        """Stop geth (SIGINT, then terminate, then kill, as py-geth does) and close its log."""
        self._stack.close()
        self._w3 = None
        self._faucet = None
        self._clique = None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            raise ChainUnavailable("geth is not started: call start() first")
        return self._w3

    def faucet(self) -> LocalAccount:
        if self._faucet is None:
            if self._w3 is None:
                raise ChainUnavailable("geth is not started: call start() first")
            raise ChainUnavailable(
                "this node joined another machine's genesis and holds no operator key: the "
                "portal runs on the machine that made the genesis (`gridbid chain init "
                "--signers`); here run `gridbid bridge --portal URL` for this machine's boards"
            )
        return self._faucet

    # -- mining, pool, peers -------------------------------------------------------------------

    def set_mining(self, on: bool) -> None:
        self.version()  # the capability flags are known from here on
        if self.clique and self._w3 is not None:
            self._adopt_signers()  # a vote may have made (or unmade) this node a signer
        if not self.has(MINING_TOGGLE):
            raise CapabilityMissing(self._no_toggle())
        if not on and self._clique is not None:
            self._clique.check_stop()
        self._rpc("miner_start" if on else "miner_stop", [])

    # -- clique signers ------------------------------------------------------------------------

    def sealer(self) -> str | None:
        """This node's clique key (its address), None on a node without one or under --dev."""
        known = self._clique.sealer if self._clique else None
        return Web3.to_checksum_address(known) if known else None

    def signers(self) -> list[str]:
        """The clique signers now (clique_getSigners), lower-case."""
        return self._signers_api("list signers").signers()

    def propose(self, address: str, authorize: bool = True) -> None:
        """Vote (as this node's signer) to add or remove a signer; a majority of signers decides."""
        self._signers_api("vote on signers").propose(address, authorize)

    def sealing_signers(self) -> list[str]:
        """The signers that sealed any of the last 2·N blocks (N signers)."""
        return self._signers_api("report who seals").sealing()

    def enode(self) -> str:
        """This node's enode URL (admin_nodeInfo), what other machines put in their peers=."""
        if not self.has(PEERS):
            raise CapabilityMissing("geth ≥ 1.14 runs --dev, which turns p2p off: no enode")
        return str(self._rpc("admin_nodeInfo", [])["enode"])

    def _adopt_signers(self) -> None:
        """The mining toggle is this node's only while its key is among the signers."""
        toggle = {MINING_TOGGLE} if self._signers_api("seal").is_signer() else set()
        self.capabilities = (self.capabilities - {MINING_TOGGLE}) | toggle

    def _signers_api(self, what: str) -> CliqueSigners:
        if not self.clique:
            raise CapabilityMissing(f"geth ≥ 1.14 runs --dev: it has no clique signers to {what}")
        if self._clique is None:
            raise ChainUnavailable("geth is not started: call start() first")
        return self._clique

    def is_mining(self) -> bool:
        if not self.clique:
            return True  # --dev always produces blocks: every dev.period s, or per transaction
        return bool(self._rpc("eth_mining", []))

    def mine(self, blocks: int = 1) -> None:
        raise CapabilityMissing(
            f"geth seals on its own clock (a block per {self._period_now()} s): it cannot mine on "
            "demand; wait for the next block"
        )

    def block_period(self) -> int | None:
        return self._period

    def pending_hashes(self) -> list[str]:
        # The raw reply: geth lists {"pending"|"queued": {sender: {"<nonce>": tx}}} with the
        # hashes as 0x-strings (web3's txpool.content() passes them on as str, not bytes).
        content = self._rpc("txpool_content", []) or {}
        found = []
        for section in ("pending", "queued"):
            for by_nonce in (content.get(section) or {}).values():
                for _, tx in sorted(by_nonce.items(), key=lambda item: int(item[0])):
                    found.append(str(tx["hash"]))
        return found

    def peers(self) -> list[dict[str, Any]]:
        if not self.has(PEERS):
            raise CapabilityMissing(
                "geth ≥ 1.14 runs --dev, which turns peer-to-peer networking off: no peers"
            )
        return [json.loads(Web3.to_json(peer)) for peer in self.w3.geth.admin.peers()]

    # -- internals ----------------------------------------------------------------------------

    def own_key(self, create: bool = False) -> str | None:
        """This node's sealer address in its keystore; made (with its passphrase) if asked."""
        return own_key(self.keystore_dir, self._sealer_pass, self.scrypt_n, create)

    def _prepare(self) -> tuple[str | None, dict[str, Any]]:
        """This node's key and the genesis, running `geth init` first if needed."""
        if (self.datadir / "geth" / "chaindata").is_dir():
            return self.own_key(), initialised_genesis(self.datadir, self.genesis_path, self.clique)
        if self.options.genesis is not None:
            genesis = self._joined_genesis(self.options.genesis)
            # A joining machine seals with its own key (made by `gridbid chain keygen`, or now):
            # it is a sealer if the genesis names it, or once the signers vote it in.
            sealer = self.own_key(create=self.clique)
        else:
            sealer = self.own_key(create=True)
            operator = own_key(self._operator_dir, self._operator_pass, self.scrypt_n, True)
            genesis = make_genesis(
                self.options.networkid,
                {str(operator): OPERATOR_FUNDS},
                signers=[sealer] if self.clique and sealer else None,
                period=self.options.period,
            )
        self.genesis_path.unlink(missing_ok=True)  # left by an init that failed half-way
        geth_init(self.binary(), genesis, self.datadir, self.genesis_path)
        return sealer, genesis

    def _joined_genesis(self, path: Path) -> dict[str, Any]:
        """Another machine's genesis, refused before `geth init` if this geth cannot run it."""
        try:
            genesis = read_genesis(path)
        except ValueError as err:
            raise ChainError(str(err)) from err
        check_genesis(genesis, self.version(), path)
        return genesis

    def _rpc(self, method: str, params: list[Any]) -> Any:
        w3 = self.w3  # ChainUnavailable when not started, as is
        try:
            return w3.manager.request_blocking(RPCEndpoint(method), params)
        except (Web3Exception, ValueError, OSError) as err:
            raise ChainError(f"geth refused {method}: {err}") from err

    def _no_toggle(self) -> str:
        if self.clique:
            return "this node joined another's clique network and does not seal blocks"
        return (
            "geth ≥ 1.14 runs --dev, which has no miner to stop: it makes a block every "
            f"{self.options.period} s (0: per transaction); use geth 1.13 for a mining toggle"
        )

    def _period_now(self) -> int:
        return self.options.period if self._period is None else self._period

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _in_use(port: int) -> bool:
    """Whether something already listens on the loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0
