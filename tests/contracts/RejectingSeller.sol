// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IApprove {
    function approve(address spender, uint256 value) external returns (bool);
}

interface IWithdrawOwed {
    function withdrawOwed() external;
}

/// @title Test-only seller account that refuses Ether until told to accept it.
/// Its deployer's key signs for it (ERC-1271), so it can offer energy and own a meter.
contract RejectingSeller {
    bool public accepting;
    address public immutable signer = msg.sender;

    /// @dev ERC-1271: the contract "signs" (offers, meter consents) what its deployer's key signed.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s) == signer ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }

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
