// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IEscrowBuyerCalls {
    function deposit(uint8 market) external payable;
    function requestWithdrawal(uint8 market, uint256 amount) external;
    function requestMove(uint8 fromMarket, uint8 toMarket, uint256 amount) external;
    function completeWithdrawal(uint8 market) external;
}

/// @title Test-only buyer whose receive() re-enters the escrow on every payout (or refuses it).
contract ReenteringBuyer {
    IEscrowBuyerCalls public immutable escrow;
    uint256 public attempts;
    uint256 public reentered;
    bool public refusing;

    constructor(IEscrowBuyerCalls escrowAddress) {
        escrow = escrowAddress;
    }

    function setRefusing(bool on) external {
        refusing = on;
    }

    function deposit(uint8 market) external payable {
        escrow.deposit{value: msg.value}(market);
    }

    function requestWithdrawal(uint8 market, uint256 amount) external {
        escrow.requestWithdrawal(market, amount);
    }

    function completeWithdrawal(uint8 market) external {
        escrow.completeWithdrawal(market);
    }

    receive() external payable {
        require(!refusing, "ReenteringBuyer: no Ether");
        attempts += 1;
        // Each try would take more than the one request allows if the escrow let it in.
        (bool ok,) = address(escrow).call(abi.encodeCall(IEscrowBuyerCalls.completeWithdrawal, (0)));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowBuyerCalls.requestWithdrawal, (0, msg.value)));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowBuyerCalls.requestMove, (0, 1, msg.value)));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call{value: 1}(abi.encodeCall(IEscrowBuyerCalls.deposit, (0)));
        if (ok) reentered += 1;
    }
}
