"""Read what an audit needs from a node: the contracts' logs from block 0 (eth_getLogs in
block ranges), the timestamps of their blocks, and the inputs of the transactions that minted
and reported delivery."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from web3 import Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from contracts import load_artifact
from geth_private.logs import LogPoller
from marketplace.audit.events import Event
from marketplace.audit.findings import Call

BATCH = 50  # blocks asked for in one JSON-RPC batch (a portal's /rpc bursts to 100 calls)
RETRIES = 8


def connect(rpc_url: str, timeout_s: float = 30.0) -> Web3:
    """A web3 connection to a node or a portal's /rpc, waiting out a rate-limited answer."""
    import requests

    # Only an HTTP error (a /rpc's 429) is worth waiting out; a node that is not there is not.
    retry = ExceptionRetryConfiguration(errors=(requests.HTTPError,), retries=6,
                                        backoff_factor=0.5)
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s},
                                  exception_retry_configuration=retry))


class ChainReader:
    """The token's and the escrow's events and calls, decoded with gridbid's own ABIs."""

    def __init__(self, w3: Web3, token: str, escrow: str, settlement: str | None = None,
                 max_range: int = 2000):
        self.w3 = w3
        self.token = w3.eth.contract(address=Web3.to_checksum_address(token),
                                     abi=load_artifact("EnergyToken").abi)
        self.escrow = w3.eth.contract(address=Web3.to_checksum_address(escrow),
                                      abi=load_artifact("EnergyEscrow").abi)
        # The interval market's IntervalSettlement, where the portal has one.
        self.settlement = None if settlement is None else w3.eth.contract(
            address=Web3.to_checksum_address(settlement),
            abi=load_artifact("IntervalSettlement").abi)
        self.max_range = max_range
        self._times: dict[int, int] = {}

    def chain_id(self) -> int:
        """The node's chain id (never the portal's word for it)."""
        return int(self.w3.eth.chain_id)

    def escrow_token(self) -> str:
        """The token the escrow settles in, as the escrow itself says."""
        return Web3.to_checksum_address(self.escrow.functions.token().call())

    def contracts(self) -> dict[str, Any]:
        """The contracts read, by artifact name."""
        found = {"EnergyToken": self.token, "EnergyEscrow": self.escrow}
        if self.settlement is not None:
            found["IntervalSettlement"] = self.settlement
        return found

    def code(self, name: str) -> bytes:
        """The runtime code at one of the contracts' addresses (by artifact name)."""
        return bytes(self.w3.eth.get_code(self.contracts()[name].address))

    def events(self) -> list[Event]:
        """Every decoded event of the contracts from block 0 to the head, oldest first."""
        poller = LogPoller(self.w3, [c.address for c in self.contracts().values()],
                           max_range=self.max_range)
        logs = poller.poll()
        self._fetch_times(sorted({raw["blockNumber"] for raw in logs}))
        found = []
        for raw in logs:
            decoded = self._decode(raw)
            if decoded is not None:
                found.append(Event(decoded[0], decoded[1], raw["blockNumber"], raw["logIndex"],
                                   self._time_of(raw["blockNumber"]),
                                   raw["transactionHash"].to_0x_hex()))
        return found

    def calls(self, tx_hashes: Iterable[str]) -> dict[str, Call]:
        """The decoded input of each transaction sent straight to one of the contracts."""
        found = {}
        for tx_hash in dict.fromkeys(tx_hashes):
            tx = self.w3.eth.get_transaction(tx_hash)
            contract = {c.address: c for c in self.contracts().values()}.get(
                Web3.to_checksum_address(tx["to"]) if tx.get("to") else "")
            if contract is None:
                continue
            try:
                function, params = contract.decode_function_input(tx["input"])
            except ValueError:  # not one of the contract's functions
                continue
            inputs = function.abi["inputs"]
            found[tx_hash] = Call(function.abi["name"], tuple(
                _named(params[item["name"]], item) for item in inputs))
        return found

    def _fetch_times(self, blocks: list[int]) -> None:
        """The timestamps of these blocks, BATCH blocks to a JSON-RPC batch where the
        provider takes batches (one call each, later, where it does not)."""
        if not hasattr(self.w3.provider, "make_batch_request"):  # e.g. eth-tester's
            return
        for i in range(0, len(blocks), BATCH):
            chunk = blocks[i:i + BATCH]
            for attempt in range(1, RETRIES + 1):
                try:
                    with self.w3.batch_requests() as batch:
                        for block in chunk:
                            batch.add(self.w3.eth.get_block(block))
                        answers = batch.execute()
                    break
                except OSError:  # requests' errors: HTTP 429 from a rate-limited /rpc
                    if attempt == RETRIES:
                        raise
                    time.sleep(attempt)
            for block, answer in zip(chunk, answers, strict=True):
                self._times[block] = int(answer["timestamp"])

    def _time_of(self, block: int) -> int:
        if block not in self._times:
            self._times[block] = int(self.w3.eth.get_block(block)["timestamp"])
        return self._times[block]

    def _decode(self, raw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        contract = next((c for c in self.contracts().values() if c.address == raw["address"]),
                        self.escrow)
        topic = bytes(raw["topics"][0]) if raw["topics"] else b""
        for event in contract.all_events():
            if bytes.fromhex(event.topic.removeprefix("0x")) == topic:
                decoded = event().process_log(raw)
                return decoded["event"], dict(decoded["args"])
        return None


def _named(value: Any, abi_input: dict[str, Any]) -> Any:
    """A decoded argument with its structs as dicts named by the ABI's components."""
    kind = abi_input["type"]
    if kind.endswith("[]"):
        element = {**abi_input, "type": kind[:-2]}
        return [_named(v, element) for v in value]
    if kind == "tuple":
        if isinstance(value, dict):
            return {c["name"]: _named(value[c["name"]], c) for c in abi_input["components"]}
        return {c["name"]: _named(v, c)
                for c, v in zip(abi_input["components"], value, strict=True)}
    if kind.startswith("bytes") and isinstance(value, bytes | bytearray):
        return bytes(value)
    if kind == "address":
        return Web3.to_checksum_address(value)
    return value
