// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IApprove {
    function approve(address spender, uint256 value) external returns (bool);
}

interface IWithdrawOwed {
    function withdrawOwed() external;
}

/// @title Test-only seller account that refuses Ether until told to accept it.
contract RejectingSeller {
    bool public accepting;

    function setAccepting(bool on) external {
        accepting = on;
    }

    function approve(address token, address spender, uint256 value) external {
        IApprove(token).approve(spender, value);
    }

    function withdrawOwed(address escrow) external {
        IWithdrawOwed(escrow).withdrawOwed();
    }

    receive() external payable {
        require(accepting, "RejectingSeller: no Ether");
    }
}
