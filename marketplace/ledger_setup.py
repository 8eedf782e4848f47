"""The ledger's setup: deploying the three contracts, attaching to deployed ones, and telling
what a chain runs (addresses, build, roles)."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from contracts import load_artifact
from contracts.bindings import contract
from contracts.evm import evm_version_of
from marketplace.ledger_intervals import ANYONE_AFTER_S, INTERVAL_S, MAX_LINE_LOSS_BPS

DEPLOY_GAS = 5_000_000  # a contract creation's fixed gas limit (test_gas measures each)


class LedgerSetup:
    """Deployment and attachment of the Ledger's contracts (a mixin: it uses the Ledger's
    operator, TxManager, contracts and sending helpers)."""

    # Provided by the Ledger: its operator, TxManager, Web3, contracts, the interval ledger
    # and its sending helpers (_operator_call, _wait).
    operator: Any
    txm: Any
    w3: Web3
    token: Any
    escrow: Any
    intervals: Any
    _operator_call: Any
    _wait: Any

    def deploy(
        self, notice_s: int, deal_duration_s: int, max_rated_power_w: int, *,
        interval_s: int = INTERVAL_S, interval_wall_s: int | None = None,
        anyone_after_s: int = ANYONE_AFTER_S, max_line_loss_bps: int = MAX_LINE_LOSS_BPS,
    ) -> dict[str, str]:
        """Deploy the three contracts from the operator and wire the escrow's burn right and
        the interval settlement's roles.

        All are fixed for the contracts' lifetime. notice_s: the escrow's withdrawal
        notice (seconds between a buyer asking for a withdrawal and completing it);
        deal_duration_s: seconds from a deal's opening to its expiry; max_rated_power_w: the
        highest rated power a meter can be enrolled with; interval_s: an interval in market
        (emulated) seconds, interval_wall_s the same in block seconds (default interval_s,
        i.e. time factor 1); anyone_after_s: when anyone may send an operator-signed batch;
        max_line_loss_bps: the most line loss sellers bear (Settings.max_line_loss_bps()).
        """
        for name, value, top in (("withdrawal notice", notice_s, 2**64),
                                 ("deal duration", deal_duration_s, 2**64),
                                 ("maximum rated power", max_rated_power_w, 2**32)):
            if not 0 < value < top:
                raise ValueError(f"the {name} must be positive and below {top}, got {value}")
        token = self._deploy("EnergyToken", self.operator.address, max_rated_power_w)
        escrow = self._deploy("EnergyEscrow", token, self.operator.address, notice_s,
                              deal_duration_s)
        self.attach({"EnergyToken": token, "EnergyEscrow": escrow})
        role = self.token.functions.ESCROW_ROLE().call()
        self._operator_call(self.token, "grantRole", [role, escrow], "Let the escrow burn tokens")
        self.intervals.deploy(anyone_after_s, interval_s, interval_wall_s or interval_s,
                              max_line_loss_bps)
        return self.addresses()

    def attach(self, addresses: dict[str, str]) -> None:
        """Use contracts already deployed at these addresses."""
        self.token = contract(self.w3, "EnergyToken", addresses["EnergyToken"])
        self.escrow = contract(self.w3, "EnergyEscrow", addresses["EnergyEscrow"])
        if addresses.get("IntervalSettlement"):
            self.intervals.attach(addresses["IntervalSettlement"])

    def deployed_at(
        self, addresses: dict[str, str], notice_s: int | None = None,
        deal_duration_s: int | None = None,
    ) -> bool:
        """Whether both contracts have code at these addresses on this chain (and, given
        notice_s, whether that escrow is of this build, with this withdrawal notice and, given
        deal_duration_s, this deal duration)."""
        if not all(
            self.w3.eth.get_code(Web3.to_checksum_address(addresses[name])) not in (b"", None)
            for name in ("EnergyToken", "EnergyEscrow")
        ):
            return False
        if notice_s is None:
            return True
        if not self.intervals.deployed_at(addresses.get("IntervalSettlement")):
            return False  # a book from before the community market (or another build)
        escrow = contract(self.w3, "EnergyEscrow", addresses["EnergyEscrow"])
        try:
            duration = escrow.functions.dealDuration().call()
            notice = escrow.functions.withdrawalNotice().call()
        except (ContractLogicError, BadFunctionCallOutput):
            return False  # an escrow built before deals had a fixed duration: redeploy
        return notice == notice_s and deal_duration_s in (None, duration)

    def build_info(self) -> dict[str, str]:
        """How the contracts this node runs were built: compiler, EVM version, OpenZeppelin."""
        # The set deploy() picks for this node (its latest header says which EVM it runs).
        artifact = load_artifact("EnergyEscrow", evm_version_of(self.w3.eth.get_block("latest")))
        return {"compiler": f"solc {artifact.compiler}", "evm_version": artifact.evm_version,
                "openzeppelin": artifact.openzeppelin}

    def roles_of(self, address: str) -> dict[str, bool]:
        """Which of the contracts' admin and operator roles an address holds."""
        admin = self.token.functions.DEFAULT_ADMIN_ROLE().call()
        operator = self.escrow.functions.OPERATOR_ROLE().call()
        return {
            "token_admin": self.token.functions.hasRole(admin, address).call(),
            "escrow_admin": self.escrow.functions.hasRole(admin, address).call(),
            "escrow_operator": self.escrow.functions.hasRole(operator, address).call(),
            "settlement_operator": self.intervals.contract is not None
            and self.intervals.contract.functions.hasRole(operator, address).call(),
        }

    def addresses(self) -> dict[str, str]:
        """Where the contracts are (what a meter key may sign transactions for)."""
        found = {"EnergyToken": self.token.address, "EnergyEscrow": self.escrow.address}
        if self.intervals.contract is not None:
            found["IntervalSettlement"] = self.intervals.address
        return found

    def _deploy(self, name: str, *args: Any) -> str:
        # The artifact set the node's EVM runs (geth 1.13's clique chain stops at London).
        artifact = load_artifact(name, evm_version_of(self.w3.eth.get_block("latest")))
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args)._encode_data_in_transaction(*args)
        tx = {"data": data, "gas": DEPLOY_GAS}
        receipt = self._wait(self.txm.send(self.operator, tx, f"Deploy {name}"))
        return receipt["contractAddress"]
