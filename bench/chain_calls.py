"""CPU of one JSON-RPC call from the portal's process: web3's default HTTP provider against
geth_private's NodeProvider (its session reads the environment's proxies once, not at each
call), on anvil, alternating in rounds so machine drift hits both alike.

The portal's loops and requests make dozens of node calls a second under one GIL (a settlement
pass's head block, the funds' eth_calls, a bid's chain id); what a call costs in Python is time
a request waits for the interpreter. Run: .venv/bin/python bench/chain_calls.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geth_private import backend_from_uri  # noqa: E402
from geth_private.anvil import find_anvil  # noqa: E402
from geth_private.provider import NodeProvider  # noqa: E402

CALLS = 300  # per round and provider
ROUNDS = 6


def cpu_ms_per_call(w3: Web3, call: str) -> float:
    """Process CPU per call, in ms, over CALLS calls."""
    do = (lambda: w3.eth.block_number) if call == "eth_blockNumber" else (
        lambda: w3.eth.get_block("latest"))
    started = time.process_time()
    for _ in range(CALLS):
        do()
    return (time.process_time() - started) * 1000 / CALLS


def main() -> None:
    if find_anvil() is None:
        print("no anvil binary (`npm ci` installs it): nothing measured")
        return
    with tempfile.TemporaryDirectory() as data:
        backend = backend_from_uri("anvil://", data)
        backend.start()
        try:
            url = backend.w3.provider.endpoint_uri
            providers = {"web3 HTTPProvider": Web3(Web3.HTTPProvider(url)),
                         "NodeProvider": Web3(NodeProvider(url, timeout=30))}
            print(f"CPU ms per call on anvil, median of {ROUNDS} rounds of {CALLS} calls")
            print(f"{'provider':<20}{'eth_blockNumber':>17}{'get_block':>11}")
            figures: dict[str, dict[str, list[float]]] = {
                name: {"eth_blockNumber": [], "get_block": []} for name in providers}
            for _ in range(ROUNDS):
                for name, w3 in providers.items():
                    for call in ("eth_blockNumber", "get_block"):
                        figures[name][call].append(cpu_ms_per_call(w3, call))
            for name, calls in figures.items():
                print(f"{name:<20}{statistics.median(calls['eth_blockNumber']):>17.3f}"
                      f"{statistics.median(calls['get_block']):>11.3f}")
        finally:
            backend.stop()


if __name__ == "__main__":
    main()
