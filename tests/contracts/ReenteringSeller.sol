// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IEscrowCalls {
    function closeDeal(uint256 dealId) external;
    function withdrawOwed() external;
    struct Reading {
        address meter;
        uint256 whIn;
        uint256 whOut;
        uint64 timestamp;
    }

    function reportDelivery(
        uint256 dealId,
        Reading calldata sellerReading,
        bytes calldata sellerSig,
        Reading calldata buyerReading,
        bytes calldata buyerSig
    ) external;
}

interface IApproveTokens {
    function approve(address spender, uint256 value) external returns (bool);
}

/// @title Test-only seller whose receive() tries to re-enter the escrow on every payment.
/// Its deployer's key signs for it (ERC-1271), so it can offer energy and own a meter.
contract ReenteringSeller {
    IEscrowCalls public immutable escrow;
    address public immutable signer = msg.sender;
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

    /// @dev ERC-1271: the contract "signs" (offers, meter consents) what its deployer's key signed.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s) == signer ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }

    receive() external payable {
        attempts += 1;
        (bool ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.closeDeal, (dealId)));
        if (ok) reentered += 1;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.withdrawOwed, ()));
        if (ok) reentered += 1;
        IEscrowCalls.Reading memory none;
        (ok,) = address(escrow).call(abi.encodeCall(IEscrowCalls.reportDelivery, (dealId, none, "", none, "")));
        if (ok) reentered += 1;
    }
}
