"""`gridbid verify` knows gridbid's contracts by their code: the runtime a node holds must be
the committed build's, immutables aside."""

from __future__ import annotations

from eth_tester import EthereumTester
from web3 import EthereumTesterProvider, Web3

from contracts import load_artifact
from marketplace.audit.code import built_by_gridbid


def test_deployed_contracts_are_recognised_and_altered_code_is_not():
    w3 = Web3(EthereumTesterProvider(EthereumTester()))
    admin = w3.eth.accounts[0]

    def deploy(name, *args):
        artifact = load_artifact(name)
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).transact({"from": admin})
        return bytes(w3.eth.get_code(w3.eth.get_transaction_receipt(tx)["contractAddress"]))

    token = deploy("EnergyToken", admin, 1_000_000)
    escrow = deploy("EnergyEscrow", Web3.to_checksum_address("0x" + "ab" * 20), admin, 100, 3600)
    assert built_by_gridbid(token, "EnergyToken") and built_by_gridbid(escrow, "EnergyEscrow")
    assert not built_by_gridbid(token, "EnergyEscrow")
    altered = bytearray(escrow)
    altered[10] ^= 0x01  # one flipped bit in the function dispatch
    assert not built_by_gridbid(bytes(altered), "EnergyEscrow")
    assert not built_by_gridbid(b"", "EnergyToken")
