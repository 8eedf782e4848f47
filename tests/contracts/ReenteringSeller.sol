// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IEscrowCalls {
    function closeDeal(uint256 dealId) external;
    function withdrawOwed() external;
    function reportDelivery(uint256 dealId, uint256 cumulativeWh) external;
}

interface IApproveTokens {
    function approve(address spender, uint256 value) external returns (bool);
}

/// @title Test-only seller whose receive() tries to re-enter the escrow on every payment.
contract ReenteringSeller {
    IEscrowCalls public immutable escrow;
    uint256 public dealId;
    uint256 public attempts;
    uint256 public reentered;

    constructor(IEscrowCalls escrowAddress) {
        escrow = escrowAddress;
    }

    function setDeal(uint256 id) external {
        dealId = id;
    }

    function approve(address token, address spender, uint256 value) external {
        IApproveTokens(token).approve(spender, value);
    }

    function pullOwed() external {
        escrow.withdrawOwed();
    }

    receive() external payable {
        attempts += 1;
        (bool ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.closeDeal, (dealId)));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.withdrawOwed, ()));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.reportDelivery, (dealId, 1)));
        if (ok) reentered += 1;
    }
}
